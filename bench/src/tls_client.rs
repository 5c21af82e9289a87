//! The TLS client of the nginx rows, a child of its own (`tls-client <port> <threads>`):
//! threads that each loop over full TLS 1.3 handshakes (new TCP connection, no session
//! reuse, no certificate check: the server's key is what is measured). On `run <ms>` it
//! answers `done <handshakes> <failures> <nanos> <first error>`.

use std::io::BufRead;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use openssl::ssl::{
    Ssl, SslContext, SslContextRef, SslMethod, SslSessionCacheMode, SslVerifyMode, SslVersion,
};

fn context() -> Result<SslContext, String> {
    let ssl = |e: openssl::error::ErrorStack| format!("client context: {e}");
    let mut b = SslContext::builder(SslMethod::tls_client()).map_err(ssl)?;
    b.set_verify(SslVerifyMode::NONE);
    b.set_min_proto_version(Some(SslVersion::TLS1_3))
        .map_err(ssl)?;
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    Ok(b.build())
}

/// One full handshake, then close_notify.
fn handshake(ctx: &SslContextRef, port: u16) -> Result<(), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let ssl = Ssl::new(ctx).map_err(|e| format!("SSL_new: {e}"))?;
    let mut stream = ssl.connect(tcp).map_err(|e| format!("handshake: {e}"))?;
    let _ = stream.shutdown();
    Ok(())
}

/// (handshakes, failures, first error) of one thread until `until`.
fn loop_until(ctx: &SslContextRef, port: u16, until: Instant) -> (u64, u64, String) {
    let (mut ok, mut failed, mut first) = (0, 0, String::new());
    while Instant::now() < until {
        match handshake(ctx, port) {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                if first.is_empty() {
                    first = e;
                }
                // A server that refuses everything must not turn this into a busy loop.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    (ok, failed, first)
}

fn batch(ctx: &SslContext, port: u16, threads: usize, duration: Duration) -> String {
    let start = Instant::now();
    let until = start + duration;
    let results: Vec<(u64, u64, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| loop_until(ctx, port, until)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (0, 1, "client thread panicked".into()))
            })
            .collect()
    });
    let nanos = start.elapsed().as_nanos();
    let ok: u64 = results.iter().map(|r| r.0).sum();
    let failed: u64 = results.iter().map(|r| r.1).sum();
    let first = results
        .iter()
        .map(|r| r.2.as_str())
        .find(|e| !e.is_empty())
        .unwrap_or_default()
        .replace('\n', " ");
    format!("done {ok} {failed} {nanos} {first}")
}

/// `tls-client <port> <threads>`.
pub fn child(args: &[String]) -> Result<(), String> {
    let [port, threads] = args else {
        return Err(format!(
            "tls-client: expected <port> <threads>, got {args:?}"
        ));
    };
    let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
    let threads: usize = threads
        .parse()
        .map_err(|_| format!("bad threads {threads}"))?;
    let ctx = context()?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let ms: u64 = line
            .trim()
            .strip_prefix("run ")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("expected run <ms>, got \"{}\"", line.trim()))?;
        println!("{}", batch(&ctx, port, threads, Duration::from_millis(ms)));
    }
    Ok(())
}
