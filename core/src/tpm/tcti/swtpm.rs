//! swtpm's TCP (or Unix) server socket reached directly: `swtpm:host=H,port=P` or
//! `swtpm:path=SOCKET`, read as tpm2-tss's swtpm TCTI reads them. The server socket carries
//! plain TPM byte strings ([`super::socket`]), one command per connection as tpm2-tss's
//! TCTI does it (swtpm serves one client at a time); tpmkey needs nothing from the control
//! socket. tpm2-tss's TCTI waited for ever for the rest of a response cut inside its header;
//! this one stops at the connection's timeout.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::socket::{Socket, Stream};

const DEFAULT_HOST: &str = "localhost";
const DEFAULT_PORT: u16 = 2321;

#[derive(Debug, PartialEq, Eq)]
pub enum SwtpmConf {
    Tcp { host: String, port: u16 },
    Unix { path: String },
}

impl SwtpmConf {
    pub fn parse(conf: &str) -> Result<SwtpmConf, String> {
        let rest = conf.strip_prefix("swtpm").unwrap_or(conf);
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        let (mut host, mut port, mut path) = (None, None, None);
        for field in rest.split(',').filter(|f| !f.is_empty()) {
            match field.split_once('=') {
                Some(("host", v)) => host = Some(v.to_string()),
                Some(("port", v)) => {
                    port = Some(
                        v.parse::<u16>()
                            .map_err(|_| format!("port \"{v}\" is not a TCP port number"))?,
                    );
                }
                Some(("path", v)) => path = Some(v.to_string()),
                _ => {
                    return Err(format!(
                        "\"{field}\": expected host=NAME, port=NUMBER or path=SOCKET"
                    ))
                }
            }
        }
        match path {
            Some(_) if host.is_some() || port.is_some() => {
                Err("path= excludes host= and port=".into())
            }
            Some(path) => Ok(SwtpmConf::Unix { path }),
            None => Ok(SwtpmConf::Tcp {
                host: host.unwrap_or_else(|| DEFAULT_HOST.into()),
                port: port.unwrap_or(DEFAULT_PORT),
            }),
        }
    }
}

/// Checks that swtpm answers a connection now (so a wrong port fails at open, naming it);
/// every command then connects anew.
pub fn open(conf: &str, timeout: Duration) -> Result<Socket, String> {
    let conf = SwtpmConf::parse(conf)?;
    drop(connect(&conf, timeout)?);
    Ok(Socket::per_command("swtpm", move || {
        connect(&conf, timeout)
    }))
}

fn connect(conf: &SwtpmConf, timeout: Duration) -> Result<Box<dyn Stream>, String> {
    let timed = |e: std::io::Error| format!("swtpm socket: {e}");
    match conf {
        SwtpmConf::Tcp { host, port } => {
            let addresses = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}: {e}"))?;
            let mut last = format!("{host} has no address");
            for address in addresses {
                match TcpStream::connect_timeout(&address, timeout) {
                    Ok(stream) => {
                        stream
                            .set_nodelay(true)
                            .and_then(|()| stream.set_read_timeout(Some(timeout)))
                            .and_then(|()| stream.set_write_timeout(Some(timeout)))
                            .map_err(timed)?;
                        return Ok(Box::new(stream));
                    }
                    Err(e) => last = format!("cannot connect to swtpm at {address}: {e}"),
                }
            }
            Err(last)
        }
        SwtpmConf::Unix { path } => {
            let stream = UnixStream::connect(path)
                .map_err(|e| format!("cannot connect to swtpm at {path}: {e}"))?;
            stream
                .set_read_timeout(Some(timeout))
                .and_then(|()| stream.set_write_timeout(Some(timeout)))
                .map_err(timed)?;
            Ok(Box::new(stream))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_strings() {
        let tcp = |host: &str, port| SwtpmConf::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(SwtpmConf::parse("swtpm:").unwrap(), tcp("localhost", 2321));
        assert_eq!(SwtpmConf::parse("swtpm").unwrap(), tcp("localhost", 2321));
        assert_eq!(
            SwtpmConf::parse("swtpm:host=127.0.0.1,port=40000").unwrap(),
            tcp("127.0.0.1", 40000)
        );
        assert_eq!(
            SwtpmConf::parse("swtpm:path=/run/swtpm.sock").unwrap(),
            SwtpmConf::Unix {
                path: "/run/swtpm.sock".into()
            }
        );
        assert!(SwtpmConf::parse("swtpm:port=70000")
            .unwrap_err()
            .contains("70000"));
        assert!(SwtpmConf::parse("swtpm:colour=red")
            .unwrap_err()
            .contains("colour"));
        assert!(SwtpmConf::parse("swtpm:path=/s,port=1").is_err());
    }
}
