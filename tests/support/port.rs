//! A loopback port held for a server that is down: the socket is bound, so no other socket of
//! the machine takes the port, but it does not listen, so connections to it are refused (as when
//! the server is down). [`ReservedPort::listen`] turns it into the server's listener in place;
//! there is no moment when the port is free for someone else to take (a test of the same process
//! once did: a pager receiver's port, dropped and bound again, was taken in between, CI 2026-12-04).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

pub struct ReservedPort {
    socket: TcpSocket,
    addr: SocketAddr,
}

impl ReservedPort {
    /// A free port of 127.0.0.1, held.
    pub fn new() -> ReservedPort {
        ReservedPort::at("127.0.0.1:0".parse().unwrap()).expect("a free loopback port can be bound")
    }

    /// `addr` held again (after its listener was closed). Fails if another socket took it.
    pub fn at(addr: SocketAddr) -> std::io::Result<ReservedPort> {
        let socket = TcpSocket::new_v4()?;
        // The port's closed connections may still be in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let addr = socket.local_addr()?;
        Ok(ReservedPort { socket, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts listening on the held port.
    pub fn listen(self) -> TcpListener {
        self.socket.listen(1024).expect("a bound socket can listen")
    }
}

impl Default for ReservedPort {
    fn default() -> Self {
        ReservedPort::new()
    }
}
