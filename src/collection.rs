//! Key Protect's collection envelope, `{"metadata": {"collectionType", "collectionTotal"},
//! "resources": [...]}`: the shape of every Key Protect body, errors included. One serializer
//! for the error renderer, the policy-document renderer and the dev KMS.

use serde::Serialize;

/// A collection of `resources` of `collection_type`, ready to serialize.
#[derive(Debug, Serialize)]
pub struct Collection<'a, T> {
    metadata: Metadata,
    resources: &'a [T],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    collection_type: &'static str,
    collection_total: usize,
    /// `totalCount` of a list asked for with `?totalCount=true`: every match, not only this page.
    #[serde(skip_serializing_if = "Option::is_none")]
    total_count: Option<usize>,
}

impl<'a, T> Collection<'a, T> {
    /// `collectionTotal` is the number of resources.
    pub fn new(collection_type: &'static str, resources: &'a [T]) -> Self {
        Collection {
            metadata: Metadata {
                collection_type,
                collection_total: resources.len(),
                total_count: None,
            },
            resources,
        }
    }

    /// Adds `totalCount` (a paged list's number of matches), when `total` is given.
    pub fn total_count(mut self, total: Option<usize>) -> Self {
        self.metadata.total_count = total;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_metadata_then_resources() {
        let json = serde_json::to_string(&Collection::new(
            "application/vnd.ibm.kms.key+json",
            &[1, 2],
        ))
        .unwrap();
        assert_eq!(
            json,
            r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":2},"resources":[1,2]}"#
        );
        let paged = serde_json::to_string(
            &Collection::new("application/vnd.ibm.kms.key+json", &[1]).total_count(Some(7)),
        )
        .unwrap();
        assert_eq!(
            paged,
            r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1,"totalCount":7},"resources":[1]}"#
        );
    }
}
