//! Publication tags filters: a subscriber asks for only the publications whose `tags` match
//! (`tf` in the subscribe request, centrifuge-js's `tagsFilter`), where the namespace allows
//! it (`allow_tags_filter`). Centrifugo's `FilterNode` tree and its semantics: leaves compare
//! one tag, `and`/`or`/`not` combine them. A bandwidth saving, not access control: a
//! subscriber may read everything in its channel anyway.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One node of a filter: a leaf (`op` empty) comparing the tag `key` by `cmp` against `val`
/// or `vals`, or `and`/`or`/`not` over `nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterNode {
    pub op: String,
    pub key: String,
    pub cmp: String,
    pub val: String,
    pub vals: Vec<String>,
    pub nodes: Vec<FilterNode>,
}

/// Deeper trees are refused: a filter is checked against every publication of the channel.
const MAX_DEPTH: usize = 16;
/// So are larger ones.
const MAX_NODES: usize = 256;

impl FilterNode {
    /// Whether the tree is well formed (checked at subscribe; a bad one is a bad request).
    pub fn validate(&self) -> Result<(), String> {
        let mut nodes = 0;
        self.check(0, &mut nodes)
    }

    fn check(&self, depth: usize, nodes: &mut usize) -> Result<(), String> {
        *nodes += 1;
        if depth > MAX_DEPTH || *nodes > MAX_NODES {
            return Err("filter too large".into());
        }
        match self.op.as_str() {
            "" => self.check_leaf(),
            "and" | "or" if self.nodes.is_empty() => {
                Err(format!("{} needs at least one node", self.op))
            }
            "and" | "or" => self
                .nodes
                .iter()
                .try_for_each(|n| n.check(depth + 1, nodes)),
            "not" if self.nodes.len() != 1 => Err("not needs exactly one node".into()),
            "not" => self.nodes[0].check(depth + 1, nodes),
            op => Err(format!("unknown op {op:?}")),
        }
    }

    fn check_leaf(&self) -> Result<(), String> {
        let (single, many) = (!self.val.is_empty(), !self.vals.is_empty());
        match self.cmp.as_str() {
            "eq" | "neq" | "sw" | "ew" | "ct" | "gt" | "gte" | "lt" | "lte" if !single || many => {
                Err(format!("{} compares one val", self.cmp))
            }
            "in" | "nin" if !many || single => Err(format!("{} compares vals", self.cmp)),
            "ex" | "nex" if single || many => Err(format!("{} takes no value", self.cmp)),
            "eq" | "neq" | "sw" | "ew" | "ct" | "gt" | "gte" | "lt" | "lte" | "in" | "nin"
                if self.key.is_empty() =>
            {
                Err("a comparison needs a key".into())
            }
            "eq" | "neq" | "sw" | "ew" | "ct" | "gt" | "gte" | "lt" | "lte" | "in" | "nin"
            | "ex" | "nex" => Ok(()),
            cmp => Err(format!("unknown cmp {cmp:?}")),
        }
    }

    /// Whether a publication with `tags` passes. Only called on a validated tree.
    pub fn matches(&self, tags: Option<&BTreeMap<String, String>>) -> bool {
        match self.op.as_str() {
            "and" => self.nodes.iter().all(|n| n.matches(tags)),
            "or" => self.nodes.iter().any(|n| n.matches(tags)),
            "not" => !self.nodes.iter().all(|n| n.matches(tags)),
            _ => self.leaf(tags.and_then(|t| t.get(&self.key)).map(String::as_str)),
        }
    }

    fn leaf(&self, tag: Option<&str>) -> bool {
        let number = |s: &str| s.trim().parse::<f64>().ok().filter(|n| n.is_finite());
        let compare =
            |ok: fn(std::cmp::Ordering) -> bool| match (tag.and_then(number), number(&self.val)) {
                (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(ok),
                _ => false,
            };
        match self.cmp.as_str() {
            "eq" => tag == Some(self.val.as_str()),
            "neq" => tag != Some(self.val.as_str()),
            "in" => self.vals.iter().any(|v| Some(v.as_str()) == tag),
            "nin" => !self.vals.iter().any(|v| Some(v.as_str()) == tag),
            "ex" => tag.is_some(),
            "nex" => tag.is_none(),
            "sw" => tag.is_some_and(|t| t.starts_with(&self.val)),
            "ew" => tag.is_some_and(|t| t.ends_with(&self.val)),
            "ct" => tag.is_some_and(|t| t.contains(&self.val)),
            "gt" => compare(std::cmp::Ordering::is_gt),
            "gte" => compare(std::cmp::Ordering::is_ge),
            "lt" => compare(std::cmp::Ordering::is_lt),
            "lte" => compare(std::cmp::Ordering::is_le),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(key: &str, cmp: &str, val: &str) -> FilterNode {
        FilterNode {
            key: key.into(),
            cmp: cmp.into(),
            val: val.into(),
            ..Default::default()
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn leaves_compare_as_centrifugo_does() {
        let t = tags(&[("kind", "alert"), ("level", "7"), ("room", "eu-west")]);
        let t = Some(&t);
        let cases = [
            (leaf("kind", "eq", "alert"), true),
            (leaf("kind", "eq", "info"), false),
            (leaf("kind", "neq", "info"), true),
            (leaf("missing", "neq", "x"), true),
            (leaf("level", "gt", "5"), true),
            (leaf("level", "gt", "7"), false),
            (leaf("level", "gte", "7"), true),
            (leaf("level", "lt", "10"), true),
            (leaf("level", "lte", "6.5"), false),
            (leaf("kind", "gt", "1"), false),
            (leaf("room", "sw", "eu-"), true),
            (leaf("room", "ew", "-west"), true),
            (leaf("room", "ct", "u-w"), true),
            (leaf("missing", "ct", ""), false),
            (leaf("kind", "ex", ""), true),
            (leaf("missing", "nex", ""), true),
        ];
        for (f, want) in cases {
            assert_eq!(f.matches(t), want, "{f:?}");
        }
        let one_of = |cmp: &str| FilterNode {
            key: "kind".into(),
            cmp: cmp.into(),
            vals: vec!["info".into(), "alert".into()],
            ..Default::default()
        };
        assert!(one_of("in").matches(t));
        assert!(!one_of("nin").matches(t));
        assert!(!leaf("kind", "eq", "alert").matches(None));
    }

    #[test]
    fn nodes_combine_and_bad_trees_are_refused() {
        let t = tags(&[("kind", "alert"), ("level", "3")]);
        let node = |op: &str, nodes: Vec<FilterNode>| FilterNode {
            op: op.into(),
            nodes,
            ..Default::default()
        };
        let both = node(
            "and",
            vec![leaf("kind", "eq", "alert"), leaf("level", "gte", "5")],
        );
        assert!(!both.matches(Some(&t)));
        assert!(node("not", vec![both.clone()]).matches(Some(&t)));
        let either = node(
            "or",
            vec![leaf("kind", "eq", "alert"), leaf("level", "gte", "5")],
        );
        assert!(either.matches(Some(&t)));
        assert!(both.validate().is_ok() && either.validate().is_ok());

        for bad in [
            node("and", vec![]),
            node("not", vec![leaf("a", "eq", "1"), leaf("b", "eq", "1")]),
            node("xor", vec![leaf("a", "eq", "1")]),
            leaf("a", "eq", ""),
            leaf("", "eq", "1"),
            leaf("a", "like", "1"),
            leaf("a", "ex", "1"),
            FilterNode {
                key: "a".into(),
                cmp: "in".into(),
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let mut deep = leaf("a", "eq", "1");
        for _ in 0..20 {
            deep = node("not", vec![deep]);
        }
        assert!(deep.validate().is_err(), "too deep");
    }
}
