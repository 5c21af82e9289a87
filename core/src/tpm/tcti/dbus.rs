//! Just enough of the D-Bus wire protocol to ask tpm2-abrmd for a connection: connect to a
//! bus, authenticate (EXTERNAL, with unix fd passing), call a method without arguments and
//! take the reply's body and file descriptors. No threads and no global state, so a process
//! forked from one that used it can open a connection of its own (GLib's D-Bus, which the
//! tabrmd TCTI uses, cannot: its worker thread does not survive fork).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A D-Bus error, in words for the TCTI error that carries it.
pub type DbusResult<T> = std::result::Result<T, String>;

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
/// Largest message accepted from the bus (replies here are tiny).
const MAX_MESSAGE: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

/// A method call's target.
#[derive(Debug)]
pub struct Call<'a> {
    pub destination: &'a str,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
}

/// A method's reply: its body (little- or big-endian as flagged) and the fds it carried.
#[derive(Debug)]
pub struct Reply {
    pub big_endian: bool,
    pub body: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

#[derive(Debug)]
pub struct Bus {
    stream: UnixStream,
    serial: u32,
}

/// The socket of a bus address (`unix:path=...` or `unix:abstract=...`; the first usable
/// one of a `;`-separated list).
fn connect(address: &str) -> DbusResult<UnixStream> {
    for one in address.split(';') {
        let Some(params) = one.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            if let Some(path) = kv.strip_prefix("path=") {
                return UnixStream::connect(unescape(path))
                    .map_err(|e| format!("D-Bus socket {path}: {e}"));
            }
            if let Some(name) = kv.strip_prefix("abstract=") {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(unescape(name))
                    .map_err(|e| format!("D-Bus address {name}: {e}"))?;
                return UnixStream::connect_addr(&addr)
                    .map_err(|e| format!("D-Bus abstract socket {name}: {e}"));
            }
        }
    }
    Err(format!(
        "D-Bus address \"{address}\" has no unix:path= or unix:abstract= transport"
    ))
}

/// D-Bus addresses escape bytes as %XX.
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Bus {
    /// Connects and authenticates to the bus at `address`, with fd passing agreed.
    pub fn open(address: &str) -> DbusResult<Bus> {
        let stream = connect(address)?;
        for t in [
            stream.set_read_timeout(Some(TIMEOUT)),
            stream.set_write_timeout(Some(TIMEOUT)),
        ] {
            t.map_err(|e| format!("D-Bus socket: {e}"))?;
        }
        let mut bus = Bus { stream, serial: 0 };
        bus.authenticate()?;
        bus.call(&Call {
            destination: "org.freedesktop.DBus",
            path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus",
            member: "Hello",
        })?;
        Ok(bus)
    }

    fn authenticate(&mut self) -> DbusResult<()> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() }.to_string();
        let uid_hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        let io = |e: std::io::Error| format!("D-Bus authentication: {e}");
        self.stream
            .write_all(format!("\0AUTH EXTERNAL {uid_hex}\r\n").as_bytes())
            .map_err(io)?;
        let mut reader = BufReader::new(&self.stream);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(io)?;
        if !line.starts_with("OK ") {
            return Err(format!(
                "D-Bus refused EXTERNAL authentication: {}",
                line.trim()
            ));
        }
        (&self.stream)
            .write_all(b"NEGOTIATE_UNIX_FD\r\n")
            .map_err(io)?;
        line.clear();
        reader.read_line(&mut line).map_err(io)?;
        if !line.starts_with("AGREE_UNIX_FD") {
            return Err(format!(
                "D-Bus bus does not pass file descriptors: {}",
                line.trim()
            ));
        }
        // The server sends nothing before BEGIN is answered, so the reader holds no bytes.
        (&self.stream).write_all(b"BEGIN\r\n").map_err(io)
    }

    /// Calls a method that takes no arguments and waits for its reply.
    pub fn call(&mut self, call: &Call<'_>) -> DbusResult<Reply> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let message = method_call(serial, call);
        self.stream
            .write_all(&message)
            .map_err(|e| format!("D-Bus call {}: {e}", call.member))?;
        loop {
            let (header, body, fds) = self.receive()?;
            if header.reply_serial != Some(serial) {
                continue; // a signal such as NameAcquired
            }
            return match header.kind {
                METHOD_RETURN => Ok(Reply {
                    big_endian: header.big_endian,
                    body,
                    fds,
                }),
                ERROR => Err(format!(
                    "{} failed: {}{}",
                    call.member,
                    header.error_name.unwrap_or_default(),
                    error_text(&body, header.big_endian)
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default()
                )),
                other => Err(format!(
                    "D-Bus answered {} with message type {other}",
                    call.member
                )),
            };
        }
    }

    /// One whole message, with the fds that came with any part of it.
    fn receive(&mut self) -> DbusResult<(Header, Vec<u8>, Vec<OwnedFd>)> {
        let mut fds = Vec::new();
        let mut fixed = [0u8; 16];
        self.read_exact(&mut fixed, &mut fds)?;
        let big_endian = match fixed[0] {
            b'l' => false,
            b'B' => true,
            e => return Err(format!("D-Bus message with endianness byte {e:#x}")),
        };
        let u32_at = |i: usize| {
            let b = [fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let body_len = u32_at(4) as usize;
        let fields_len = u32_at(12) as usize;
        let header_len = (16 + fields_len).next_multiple_of(8);
        if header_len.saturating_add(body_len) > MAX_MESSAGE {
            return Err("D-Bus message larger than 1 MiB".into());
        }
        let mut rest = vec![0u8; header_len - 16 + body_len];
        self.read_exact(&mut rest, &mut fds)?;
        let header = Header::parse(fixed[1], big_endian, &rest[..fields_len])?;
        let body = rest.split_off(header_len - 16);
        Ok((header, body, fds))
    }

    /// Fills `buf` with recvmsg, collecting passed fds.
    fn read_exact(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> DbusResult<()> {
        use std::os::fd::AsRawFd;
        let mut done = 0;
        while done < buf.len() {
            let mut iov = libc::iovec {
                iov_base: buf[done..].as_mut_ptr().cast(),
                iov_len: buf.len() - done,
            };
            let mut control = [0u64; 16];
            // SAFETY: msghdr is plain data; the pointers set below outlive the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control);
            // SAFETY: the socket is open; msg points at live buffers of the sizes given.
            let n =
                unsafe { libc::recvmsg(self.stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("D-Bus receive: {e}"));
            }
            if n == 0 {
                return Err("D-Bus closed the connection".into());
            }
            // SAFETY: walks the control messages the kernel wrote into `control`; each
            // SCM_RIGHTS payload is an array of fds now owned by this process.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::SOL_SOCKET
                        && (*cmsg).cmsg_type == libc::SCM_RIGHTS
                    {
                        let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                        let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                        for i in 0..len / std::mem::size_of::<libc::c_int>() {
                            fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
                }
            }
            done += n as usize;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Header {
    kind: u8,
    big_endian: bool,
    reply_serial: Option<u32>,
    error_name: Option<String>,
}

/// A bounds-checked reader over a D-Bus body or header-field array.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl Cursor<'_> {
    fn align(&mut self, n: usize) {
        self.pos = self.pos.next_multiple_of(n);
    }
    fn take(&mut self, n: usize) -> DbusResult<&[u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        let end = end.ok_or("truncated D-Bus message")?;
        let v = &self.data[self.pos..end];
        self.pos = end;
        Ok(v)
    }
    fn u8(&mut self) -> DbusResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> DbusResult<u32> {
        self.align(4);
        let b = self.take(4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    pub fn u64(&mut self) -> DbusResult<u64> {
        self.align(8);
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(if self.big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        })
    }
    fn string(&mut self) -> DbusResult<String> {
        let n = self.u32()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Ok(s)
    }
    fn signature(&mut self) -> DbusResult<String> {
        let n = self.u8()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Ok(s)
    }
}

impl Header {
    fn parse(kind: u8, big_endian: bool, fields: &[u8]) -> DbusResult<Header> {
        let mut c = Cursor {
            data: fields,
            pos: 0,
            big_endian,
        };
        let mut header = Header {
            kind,
            big_endian,
            reply_serial: None,
            error_name: None,
        };
        while c.pos < fields.len() {
            c.align(8);
            if c.pos >= fields.len() {
                break;
            }
            let code = c.u8()?;
            let sig = c.signature()?;
            match sig.as_str() {
                "u" => {
                    let v = c.u32()?;
                    if code == FIELD_REPLY_SERIAL {
                        header.reply_serial = Some(v);
                    }
                }
                "s" | "o" => {
                    let v = c.string()?;
                    if code == FIELD_ERROR_NAME {
                        header.error_name = Some(v);
                    }
                }
                "g" => {
                    c.signature()?;
                }
                other => return Err(format!("D-Bus header field of type {other}")),
            }
        }
        Ok(header)
    }
}

/// The message of an error reply, whose body starts with a string.
fn error_text(body: &[u8], big_endian: bool) -> Option<String> {
    Cursor {
        data: body,
        pos: 0,
        big_endian,
    }
    .string()
    .ok()
}

/// The u64 a reply's body starts with.
pub fn reply_u64(reply: &Reply) -> DbusResult<u64> {
    Cursor {
        data: &reply.body,
        pos: 0,
        big_endian: reply.big_endian,
    }
    .u64()
}

fn method_call(serial: u32, call: &Call<'_>) -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, sig, value) in [
        (FIELD_PATH, b'o', call.path),
        (FIELD_INTERFACE, b's', call.interface),
        (FIELD_MEMBER, b's', call.member),
        (FIELD_DESTINATION, b's', call.destination),
    ] {
        while fields.len() % 8 != 0 {
            fields.push(0);
        }
        fields.extend_from_slice(&[code, 1, sig, 0]);
        fields.extend_from_slice(&(value.len() as u32).to_le_bytes());
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    let mut m = vec![b'l', METHOD_CALL, 0, 1];
    m.extend_from_slice(&0u32.to_le_bytes()); // no body
    m.extend_from_slice(&serial.to_le_bytes());
    m.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    m.extend_from_slice(&fields);
    while m.len() % 8 != 0 {
        m.push(0);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_call_layout() {
        let m = method_call(
            7,
            &Call {
                destination: "d",
                path: "/p",
                interface: "i.f",
                member: "M",
            },
        );
        assert_eq!(&m[..4], &[b'l', 1, 0, 1]);
        assert_eq!(u32::from_le_bytes([m[8], m[9], m[10], m[11]]), 7);
        assert_eq!(m.len() % 8, 0);
        let fields_len = u32::from_le_bytes([m[12], m[13], m[14], m[15]]) as usize;
        let h = Header::parse(METHOD_CALL, false, &m[16..16 + fields_len]).unwrap();
        assert_eq!(h.reply_serial, None);
    }

    #[test]
    fn addresses_and_escapes() {
        assert_eq!(unescape("/tmp/a%2cb"), "/tmp/a,b");
        assert_eq!(unescape("/x%"), "/x%");
        assert!(connect("tcp:host=localhost")
            .unwrap_err()
            .contains("no unix:path="));
    }

    #[test]
    fn truncated_fields_are_errors() {
        assert!(Header::parse(2, false, &[5, 1, b'u', 0, 1]).is_err());
    }
}
