//! A real TCP gate in front of a server (the FHIR server in the tests): while it is down its
//! port is reserved and nothing listens (connections are refused, as when the EHR's FHIR server
//! is down); while it is up every connection is forwarded byte for byte to the target.

use std::net::SocketAddr;

use crate::port::ReservedPort;

pub struct TcpGate {
    pub addr: SocketAddr,
    pub base: String,
    target: SocketAddr,
    /// The port while the gate is down.
    reserved: Option<ReservedPort>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TcpGate {
    /// A gate to `target` that is down until [`TcpGate::up`].
    pub async fn down(target: SocketAddr) -> TcpGate {
        let reserved = ReservedPort::new();
        let addr = reserved.addr();
        TcpGate {
            addr,
            base: format!("http://{addr}"),
            target,
            reserved: Some(reserved),
            task: None,
        }
    }

    /// Starts forwarding on the reserved port.
    pub async fn up(&mut self) {
        let listener = self
            .reserved
            .take()
            .expect("the gate is down (its port held)")
            .listen();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
