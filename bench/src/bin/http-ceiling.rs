//! The HTTP ceiling: a minimal axum server answering one fixed JSON body, the same bytes as a
//! real catalog page captured in the same run. Whatever the real API reaches is compared to it.
//!
//! Usage: `http-ceiling --body page.json --port 18080`

use std::net::SocketAddr;

use axum::{Router, http::header, routing::get};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// File whose bytes are served at every path.
    #[arg(long)]
    body: std::path::PathBuf,
    #[arg(long, default_value_t = 18080)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body: &'static [u8] = Vec::leak(std::fs::read(&args.body)?);
    let app = Router::new().fallback(get(move || async move {
        ([(header::CONTENT_TYPE, "application/json")], body)
    }));
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
