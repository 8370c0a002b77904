//! A PostgreSQL server of a test's own (`initdb` into a temporary directory, a free loopback
//! port, trust auth), for a test that stops the database under a running service: the
//! machine's PostgreSQL on 5432 serves every other test and is never touched.
//!
//! The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, or
//! `CHORUS_POSTGRES_BIN_DIR`). PostgreSQL refuses to run as root, so as root the server runs
//! as the `postgres` user that Debian's package creates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct PostgresServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

/// Where Debian keeps the server binaries, the newest version first.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHORUS_POSTGRES_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries are installed (Debian's postgresql package)")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    found
        .pop()
        .expect("no /usr/lib/postgresql/<version>/bin/initdb (or set CHORUS_POSTGRES_BIN_DIR)")
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `program args`, as the `postgres` user when this process is root.
fn command(program: &Path) -> Command {
    if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// A new cluster, started and accepting connections.
    pub async fn start() -> PostgresServer {
        let dir = std::env::temp_dir().join(crate::unique("chorus-postgres"));
        std::fs::create_dir_all(&dir).unwrap();
        if as_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres", &dir.display().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown postgres {}", dir.display());
        }
        let bin = bin_dir();
        let out = command(&bin.join("initdb"))
            .args(["-D", &dir.join("data").display().to_string()])
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = PostgresServer {
            port: crate::free_port(),
            dir,
            bin,
            child: None,
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = command(&self.bin.join("postgres"))
            .args(["-D", &self.dir.join("data").display().to_string()])
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1"])
            .args(["-k", &self.dir.display().to_string()])
            // Test data: a crash loses the last commits' durability, never their consistency.
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..300 {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("postgres did not start:\n{}", self.log_text());
    }

    /// The server's own pid: under `runuser` the child is runuser, which waits for it.
    fn postmaster_pid(&self) -> Option<String> {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        pidfile.lines().next().map(str::to_owned)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// `CREATE DATABASE name`.
    pub fn create_database(&self, name: &str) {
        let out = Command::new("psql")
            .args([
                &self.url("postgres"),
                "-q",
                "-c",
                &format!("CREATE DATABASE {name}"),
            ])
            .output()
            .expect("psql is installed (Debian's postgresql-client)");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An immediate shutdown (SIGQUIT to the postmaster): every backend is gone at once, open
    /// transactions are lost, and the next start runs crash recovery, as after a crash.
    pub fn stop(&mut self) {
        if let Some(pid) = self.postmaster_pid() {
            let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// Started again on the same port with its data.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
