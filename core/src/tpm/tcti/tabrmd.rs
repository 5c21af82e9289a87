//! tpm2-abrmd reached without its GLib-based TCTI library: one D-Bus call
//! (`CreateConnection`) hands back a socket, and commands and responses then cross that
//! socket as plain TPM byte strings. Used for every `tabrmd:` TCTI, so a forked child
//! connects like any process (the library's GDBus threads did not survive fork: its children
//! waited 25 s for a D-Bus reply that never came).

use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::dbus::{reply_u64, Bus, Call};
use super::socket::Socket;

const DEFAULT_BUS_NAME: &str = "com.intel.tss2.Tabrmd";
const OBJECT_PATH: &str = "/com/intel/tss2/Tabrmd/Tcti";
const INTERFACE: &str = "com.intel.tss2.TctiTabrmd";
const SYSTEM_BUS: &str = "unix:path=/var/run/dbus/system_bus_socket";

/// `tabrmd:[bus_name=NAME][,bus_type=system|session]`, as the tabrmd TCTI reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct TabrmdConf {
    pub bus_name: String,
    pub session_bus: bool,
}

impl TabrmdConf {
    pub fn parse(conf: &str) -> Result<TabrmdConf, String> {
        let rest = conf.strip_prefix("tabrmd").unwrap_or(conf);
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        let mut parsed = TabrmdConf {
            bus_name: DEFAULT_BUS_NAME.into(),
            session_bus: false,
        };
        for kv in rest.split(',').filter(|kv| !kv.trim().is_empty()) {
            match kv.split_once('=') {
                Some(("bus_name", v)) => parsed.bus_name = v.into(),
                Some(("bus_type", "system")) => parsed.session_bus = false,
                Some(("bus_type", "session")) => parsed.session_bus = true,
                _ => {
                    return Err(format!(
                        "unknown tabrmd option \"{kv}\" (bus_name=, bus_type=system|session)"
                    ))
                }
            }
        }
        Ok(parsed)
    }

    fn bus_address(&self) -> Result<String, String> {
        let var = if self.session_bus {
            "DBUS_SESSION_BUS_ADDRESS"
        } else {
            "DBUS_SYSTEM_BUS_ADDRESS"
        };
        match std::env::var(var) {
            Ok(a) if !a.is_empty() => Ok(a),
            _ if !self.session_bus => Ok(SYSTEM_BUS.into()),
            _ => Err("bus_type=session but DBUS_SESSION_BUS_ADDRESS is not set".into()),
        }
    }
}

/// A connection of its own to tpm2-abrmd.
pub fn open(conf: &str, timeout: Duration) -> Result<Socket, String> {
    let conf = TabrmdConf::parse(conf)?;
    let mut bus = Bus::open(&conf.bus_address()?)?;
    let mut reply = bus.call(&Call {
        destination: &conf.bus_name,
        path: OBJECT_PATH,
        interface: INTERFACE,
        member: "CreateConnection",
    })?;
    reply_u64(&reply)?; // the connection id, needed only for Cancel and SetLocality
    let fd = reply
        .fds
        .pop()
        .ok_or("tpm2-abrmd's CreateConnection reply carried no socket")?;
    let socket = UnixStream::from(fd);
    // tpm2-abrmd makes its end non-blocking; ours waits, with a timeout.
    socket
        .set_nonblocking(false)
        .and_then(|()| socket.set_read_timeout(Some(timeout)))
        .and_then(|()| socket.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("tpm2-abrmd socket: {e}"))?;
    Ok(Socket::new(socket, "tpm2-abrmd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_strings() {
        assert_eq!(
            TabrmdConf::parse("tabrmd:").unwrap(),
            TabrmdConf {
                bus_name: DEFAULT_BUS_NAME.into(),
                session_bus: false
            }
        );
        assert_eq!(
            TabrmdConf::parse("tabrmd:bus_name=a.b,bus_type=session").unwrap(),
            TabrmdConf {
                bus_name: "a.b".into(),
                session_bus: true
            }
        );
        assert!(TabrmdConf::parse("tabrmd:bus_type=tcp").is_err());
    }
}
