//! Where the `messages` table is: the sink, which writes it, and the API, which reads it,
//! share this `[dynamodb]` section.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamoDb {
    /// A DynamoDB Local (or other) endpoint; empty means real AWS in `region`.
    pub endpoint: String,
    pub region: String,
    pub table: String,
    /// Create the table (on-demand capacity) when it is missing.
    pub create_table: bool,
    /// Static credentials; empty means the AWS default chain (environment, profile, web
    /// identity, instance metadata). With an endpoint and no keys, fixed local keys are used:
    /// DynamoDB Local accepts any.
    pub access_key_id: String,
    pub secret_access_key: String,
    /// One HTTP attempt's limit: a DynamoDB that accepts connections but never answers (a
    /// stopped process) shows as down after this long.
    pub attempt_timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

impl Default for DynamoDb {
    fn default() -> Self {
        DynamoDb {
            endpoint: String::new(),
            region: "us-east-1".into(),
            table: "messages".into(),
            create_table: true,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            attempt_timeout_ms: 5_000,
            connect_timeout_ms: 1_000,
        }
    }
}

impl DynamoDb {
    /// Why these settings cannot work, as `dynamodb.<key>`.
    pub fn validate(&self) -> Result<(), String> {
        if self.table.is_empty() {
            return Err("dynamodb.table is empty".into());
        }
        if !self.endpoint.is_empty()
            && !self.endpoint.starts_with("http://")
            && !self.endpoint.starts_with("https://")
        {
            return Err("dynamodb.endpoint must be an http:// or https:// URL".into());
        }
        if self.access_key_id.is_empty() != self.secret_access_key.is_empty() {
            return Err("dynamodb.access_key_id and secret_access_key go together".into());
        }
        Ok(())
    }
}
