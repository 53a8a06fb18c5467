//! A throwaway HTTP server for unit tests: answers each request with what
//! `respond` returns for its request line (`GET /path HTTP/1.1`).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves on a free loopback port until the test ends; returns its base URL.
pub async fn serve(
    respond: impl Fn(&str) -> (&'static str, String) + Send + Sync + 'static,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let respond = Arc::clone(&respond);
            tokio::spawn(async move {
                let mut request = [0_u8; 2048];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&request[..n]);
                let line = text.lines().next().unwrap_or_default();
                let (status, body) = respond(line);
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}
