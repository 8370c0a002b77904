//! The `messages` table through aws-sdk-dynamodb: one attempt per call. Retrying belongs to
//! the caller, which knows when to give up and what to count, so the SDK's own retries are
//! off; each attempt has a timeout, so a DynamoDB that never answers is noticed.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
    PutRequest, ScalarAttributeType, TableStatus, WriteRequest,
};
use aws_sdk_dynamodb::Client;

use crate::config::DynamoDb;
use crate::model::{Item, Key, PARTITION_KEY, SORT_KEY};

/// How a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer, a timeout, a server error, a missing table: DynamoDB cannot take writes now.
    Unavailable(String),
    /// DynamoDB answered "slow down".
    Throttled(String),
    /// DynamoDB refused the request itself; sending it again will not help.
    Rejected(String),
}

impl Failure {
    fn of<E, R>(e: SdkError<E, R>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let text = DisplayErrorContext(&e).to_string();
        let SdkError::ServiceError(service) = &e else {
            return Failure::Unavailable(text);
        };
        match service.err().code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "LimitExceededException",
            ) => Failure::Throttled(text),
            Some(
                "ValidationException"
                | "SerializationException"
                | "ItemCollectionSizeLimitExceededException",
            ) => Failure::Rejected(text),
            _ => Failure::Unavailable(text),
        }
    }
}

pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    pub async fn new(cfg: &DynamoDb) -> Store {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .operation_attempt_timeout(Duration::from_millis(cfg.attempt_timeout_ms))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if !cfg.endpoint.is_empty() {
            loader = loader.endpoint_url(&cfg.endpoint);
        }
        let keys = match (cfg.access_key_id.as_str(), cfg.endpoint.is_empty()) {
            ("", true) => None, // real AWS: the default credential chain
            ("", false) => Some(("chorus", "local")),
            (id, _) => Some((id, cfg.secret_access_key.as_str())),
        };
        if let Some((id, secret)) = keys {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                None,
                None,
                "chorus-history",
            ));
        }
        Store {
            client: Client::new(&loader.load().await),
            table: cfg.table.clone(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the table exists and is active (false while it is being created).
    pub async fn table_ready(&self) -> Result<bool, Failure> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => Ok(out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(Failure::of(e)),
        }
    }

    /// Creates the table (on-demand capacity) unless it exists; the caller polls
    /// [`Store::table_ready`] until it is active.
    pub async fn create_table(&self) -> Result<(), Failure> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("invariant: name and type are set")
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("invariant: name and type are set")
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr(PARTITION_KEY))
            .attribute_definitions(attr(SORT_KEY))
            .key_schema(key(PARTITION_KEY, KeyType::Hash))
            .key_schema(key(SORT_KEY, KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {
                tracing::info!(table = %self.table, "created the table");
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(Failure::of(e)),
        }
    }

    /// One BatchWriteItem call (at most 25 requests); returns what DynamoDB handed back
    /// unprocessed.
    pub async fn batch_write(
        &self,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, Failure> {
        debug_assert!(requests.len() <= 25);
        let out = self
            .client
            .batch_write_item()
            .request_items(&self.table, requests)
            .send()
            .await
            .map_err(Failure::of)?;
        Ok(out
            .unprocessed_items
            .and_then(|mut u| u.remove(&self.table))
            .unwrap_or_default())
    }

    /// Sets attributes of an existing item; false if the item does not exist.
    pub async fn update(
        &self,
        key: &Key,
        sets: &[(String, AttributeValue)],
    ) -> Result<bool, Failure> {
        let mut call = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.item()))
            .condition_expression(format!("attribute_exists({SORT_KEY})"));
        let mut expression = Vec::with_capacity(sets.len());
        for (i, (name, value)) in sets.iter().enumerate() {
            expression.push(format!("#a{i} = :v{i}"));
            call = call
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value.clone());
        }
        match call
            .update_expression(format!("SET {}", expression.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(Failure::of(e)),
        }
    }

    /// A put or delete on its own, to find which item of a refused batch DynamoDB refuses.
    pub async fn write_one(&self, request: WriteRequest) -> Result<(), Failure> {
        if let Some(put) = request.put_request {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .send()
                .await
                .map(drop)
                .map_err(Failure::of)
        } else if let Some(delete) = request.delete_request {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(delete.key))
                .send()
                .await
                .map(drop)
                .map_err(Failure::of)
        } else {
            Ok(())
        }
    }
}

/// The BatchWriteItem request that writes `item` whole.
pub fn put_request(item: Item) -> WriteRequest {
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("invariant: the item is set"),
        )
        .build()
}

/// The BatchWriteItem request that removes `key`'s item.
pub fn delete_request(key: &Key) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .set_key(Some(key.item()))
                .build()
                .expect("invariant: the key is set"),
        )
        .build()
}
