//! A real TCP gate in front of a server (the FHIR server in the tests): while it is down its
//! port is reserved and nothing listens (connections are refused, as when the EHR's FHIR server
//! is down); while it is up every connection is forwarded byte for byte to the target.

use std::net::SocketAddr;

pub struct TcpGate {
    pub addr: SocketAddr,
    pub base: String,
    target: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TcpGate {
    /// A gate to `target` that is down until [`TcpGate::up`].
    pub async fn down(target: SocketAddr) -> TcpGate {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        TcpGate {
            addr,
            base: format!("http://{addr}"),
            target,
            task: None,
        }
    }

    /// Starts forwarding on the reserved port.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the gate's port is free again");
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
