//! A real Redis server (Debian's, `make setup` links it as
//! build/tools/bin/redis-server) on a free loopback port, for the platform
//! tests: nothing persisted, stopped when dropped, and able to be stopped and
//! started again on the same port (an outage).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::eventually::eventually;
use super::http::free_port;

pub struct Redis {
    pub addr: SocketAddr,
    password: Option<String>,
    child: Option<Child>,
}

fn server_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/tools/bin/redis-server");
    assert!(
        path.exists(),
        "{} is missing: `make setup` installs Debian's redis-tools and links it",
        path.display()
    );
    path
}

impl Redis {
    pub fn start(password: Option<&str>) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut redis = Self {
            addr,
            password: password.map(str::to_string),
            child: None,
        };
        redis.resume();
        redis
    }

    /// `redis://127.0.0.1:PORT`, as WASMHTTP_KEYVALUE takes it.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new(server_binary());
        command
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.addr.port().to_string(),
            ])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // nothing is persisted; should it be, not into the work tree
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        self.child = Some(command.spawn().expect("redis-server starts"));
        eventually(
            Duration::from_secs(10),
            "redis-server answers PING",
            || match self.command(&["PING"]) {
                Ok(reply) if reply == "PONG" => Ok(()),
                Ok(reply) => Err(reply),
                Err(err) => Err(err.to_string()),
            },
        );
    }

    /// Stops the server (SIGKILL: an outage, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One command on a connection of its own; the reply as text (a bulk
    /// string's contents, an integer's digits, `(nil)`, or `ERR …`).
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut send = |args: &[&str]| -> std::io::Result<()> {
            let mut out = format!("*{}\r\n", args.len());
            for arg in args {
                out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
            }
            writer.write_all(out.as_bytes())
        };
        if let Some(password) = &self.password {
            send(&["AUTH", password])?;
            read_reply(&mut reader)?;
        }
        send(args)?;
        read_reply(&mut reader)
    }

    /// A field of `INFO`, such as `connected_clients`.
    pub fn info(&self, field: &str) -> String {
        let info = self.command(&["INFO"]).unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("{field} not in INFO:\n{info}"))
            .trim()
            .to_string()
    }
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    match line.split_at(1.min(line.len())) {
        ("+", rest) | (":", rest) => Ok(rest.to_string()),
        ("-", rest) => Ok(rest.to_string()),
        ("$", "-1") => Ok("(nil)".into()),
        ("$", len) => {
            let len: usize = len.parse().map_err(std::io::Error::other)?;
            let mut body = vec![0; len + 2];
            std::io::Read::read_exact(reader, &mut body)?;
            body.truncate(len);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => Err(std::io::Error::other(format!("unexpected reply {line:?}"))),
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
