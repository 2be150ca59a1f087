//! The control socket: how a CLI command tells a server running on the same data directory that
//! it just changed keys, users or tenants.
//!
//! Every change is written with a row in the change feed, which servers read every 200 ms. A
//! server with a control socket also reads it the moment a CLI command asks, and answers only
//! after its caches dropped what the change names: when `keygate keys disable` returns, the next
//! request with that key is refused.
//!
//! The socket is `control.sock` in the data directory, a Unix socket only its owner may open
//! (mode 0600). Its one request, `catch-up`, makes the server read the feed early; nothing else
//! can be asked, and a connection gets one answer.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use keygate_service::Keygate;

const FILE: &str = "control.sock";
const REQUEST: &[u8] = b"catch-up\n";
/// How long a CLI command waits for the server's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the control socket of a server on `data_dir` is.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// A listening control socket; the file is removed when it is dropped.
#[derive(Debug)]
pub struct Control {
    path: PathBuf,
    #[cfg(unix)]
    listener: tokio::net::UnixListener,
}

#[cfg(unix)]
impl Control {
    /// Listens on the control socket of `data_dir`. `None` (with a warning) when another live
    /// server holds it, or the socket cannot be made: CLI changes then reach this server through
    /// the change feed alone.
    pub async fn bind(data_dir: &Path) -> Option<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = path(data_dir);
        if path.exists() {
            if tokio::net::UnixStream::connect(&path).await.is_ok() {
                tracing::warn!(
                    socket = %path.display(),
                    "another keygate server answers on this data directory's control socket; \
                     CLI changes reach this one through the change feed (within 200 ms)"
                );
                return None;
            }
            // Left behind by a server that did not stop cleanly.
            let _ = std::fs::remove_file(&path);
        }
        if let Err(e) = std::fs::create_dir_all(data_dir) {
            tracing::warn!(error = %e, "cannot create the data directory for the control socket");
            return None;
        }
        let listener = match tokio::net::UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, socket = %path.display(), "cannot open the control socket");
                return None;
            }
        };
        if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(error = %e, "cannot restrict the control socket to its owner; closing it");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(Self { path, listener })
    }

    /// Answers requests until the task is dropped.
    pub async fn serve(self, keygate: Keygate) {
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting on the control socket failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let keygate = keygate.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &keygate).await {
                    tracing::debug!(error = %e, "a control socket request failed");
                }
            });
        }
    }
}

#[cfg(unix)]
async fn answer(mut stream: tokio::net::UnixStream, keygate: &Keygate) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut request = [0u8; REQUEST.len()];
    tokio::time::timeout(ANSWER_TIMEOUT, stream.read_exact(&mut request)).await??;
    if request != REQUEST {
        return stream.write_all(b"unknown request\n").await;
    }
    let reply: &[u8] = match keygate.catch_up().await {
        Ok(()) => b"ok\n",
        Err(e) => {
            tracing::warn!(error = %e, "reading the change feed for a CLI command failed");
            b"failed\n"
        }
    };
    stream.write_all(reply).await
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What became of telling a server about a change.
#[derive(Debug, PartialEq, Eq)]
pub enum Notified {
    /// No server listens on this data directory.
    NoServer,
    /// The server has dropped what the change names from its caches.
    Applied,
    /// A server is there but did not confirm; it sees the change through the feed.
    Unconfirmed(String),
}

/// Tells the server on `data_dir`, if one runs, to catch up with the change feed now, and waits
/// for it to confirm.
#[cfg(unix)]
pub async fn notify(data_dir: &Path) -> Notified {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let path = path(data_dir);
    if !path.exists() {
        return Notified::NoServer;
    }
    let exchange = async {
        let mut stream = match tokio::net::UnixStream::connect(&path).await {
            Ok(s) => s,
            // A socket file nobody listens on: a server that did not stop cleanly.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(Notified::NoServer),
            Err(e) => return Err(e),
        };
        stream.write_all(REQUEST).await?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await?;
        Ok(if reply == b"ok\n" {
            Notified::Applied
        } else {
            Notified::Unconfirmed(String::from_utf8_lossy(&reply).trim().to_owned())
        })
    };
    match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => Notified::Unconfirmed(e.to_string()),
        Err(_) => Notified::Unconfirmed(format!("no answer within {ANSWER_TIMEOUT:?}")),
    }
}

#[cfg(not(unix))]
impl Control {
    pub async fn bind(_data_dir: &Path) -> Option<Self> {
        None
    }

    pub async fn serve(self, _keygate: Keygate) {}
}

#[cfg(not(unix))]
pub async fn notify(_data_dir: &Path) -> Notified {
    Notified::NoServer
}
