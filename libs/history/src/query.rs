//! The history query the API runs: one Query on a chat's partition, newest first, before a
//! cursor. Message ids are ULIDs, so the cursor is just the last id of a page and messages
//! sent meanwhile never shift a later page.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

use crate::model::{Item, PARTITION_KEY, SORT_KEY};
use crate::store::Store;

impl Store {
    /// Up to `limit` items of `chat_id`, newest first, with ids below `before` if given. The
    /// error is the SDK's, with its context, for the caller's log.
    pub async fn page(
        &self,
        chat_id: &str,
        before: Option<&str>,
        limit: i32,
    ) -> Result<Vec<Item>, String> {
        let mut query = self
            .client()
            .query()
            .table_name(self.table())
            .scan_index_forward(false)
            .limit(limit)
            .expression_attribute_values(":c", AttributeValue::S(chat_id.to_owned()));
        query = match before {
            Some(b) => query
                .key_condition_expression(format!("{PARTITION_KEY} = :c AND {SORT_KEY} < :b"))
                .expression_attribute_values(":b", AttributeValue::S(b.to_owned())),
            None => query.key_condition_expression(format!("{PARTITION_KEY} = :c")),
        };
        let out = query
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(out.items.unwrap_or_default())
    }
}

/// An item as a JSON object, without its partition key (the chat is in the URL).
pub fn json_item(item: &Item) -> Map<String, Value> {
    item.iter()
        .filter(|(k, _)| k.as_str() != PARTITION_KEY)
        .map(|(k, v)| (k.clone(), json_of(v)))
        .collect()
}

/// DynamoDB attribute values as JSON: strings, numbers (as JSON numbers), maps, lists.
pub fn json_of(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::M(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
        AttributeValue::L(l) => Value::Array(l.iter().map(json_of).collect()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_json_without_their_chat() {
        let item: Item = [
            ("chat_id", AttributeValue::S("c1".into())),
            ("message_id", AttributeValue::S("01J".into())),
            ("created_at", AttributeValue::N("1700".into())),
            ("ratio", AttributeValue::N("0.5".into())),
            (
                "thumbnail",
                AttributeValue::M([("width".to_owned(), AttributeValue::N("320".into()))].into()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(
            Value::Object(json_item(&item)),
            serde_json::json!({"message_id": "01J", "created_at": 1700, "ratio": 0.5,
                               "thumbnail": {"width": 320}})
        );
    }
}
