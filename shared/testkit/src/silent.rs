//! A PostgreSQL that does not answer: it accepts TCP connections and holds them open without a byte in reply, as a
//! database behind a dropped route or a stalled pooler looks to a client.

use tokio::net::TcpListener;

pub struct SilentServer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { port, task }
    }

    /// A `DATABASE_URL` pointing at it (with a password, which no error may show).
    pub fn url(&self) -> String {
        format!("postgres://crmsync:never-shown@127.0.0.1:{}/postgres", self.port)
    }

    /// `127.0.0.1:port`, as errors name it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A pool with `timeouts` over it.
    pub fn pool(&self, timeouts: crmsync_db::Timeouts) -> crmsync_db::Pool {
        crmsync_db::DatabaseSettings::parse(&self.url(), timeouts)
            .and_then(|settings| settings.pool())
            .expect("pool")
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
