//! The set's revision: a digest of its documents (their structure, not their text, so a
//! document written as JSON or as YAML digests the same) and bindings; and the 64-bit
//! digest the linter tells values apart with.
//!
//! The encoding is pinned by a test: replicas of different releases must name a set the
//! same way. It may not read the compiled set, only the inputs.

use foldhash::fast::FixedState;
use sha2::{Digest, Sha256};

use super::Bindings;

/// The revision digest of a set's inputs: its documents' digests in name order, then the
/// bindings.
pub(crate) fn revision_of(docs: &mut [(String, [u8; 32])], bindings: &Bindings) -> String {
    docs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, digest) in docs.iter() {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(digest);
    }
    // Serialized whole and hashed in one call (cheaper than feeding the hasher the
    // serializer's many small writes); bindings always serialize.
    if let Ok(text) = serde_json::to_vec(bindings) {
        h.update(text);
    }
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Where [`encode`] writes: a buffer or a hasher.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// Feeds an unambiguous encoding of a JSON value's structure to `out` (cheaper than
/// serializing it: no escaping, no number formatting, no copy of the document).
fn encode(out: &mut impl Sink, v: &serde_json::Value) {
    use serde_json::Value as J;
    fn len(out: &mut impl Sink, n: usize) {
        out.put(&(n as u64).to_le_bytes());
    }
    match v {
        J::Null => out.put(b"n"),
        J::Bool(true) => out.put(b"t"),
        J::Bool(false) => out.put(b"f"),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.put(b"#i");
                out.put(&i.to_le_bytes());
            } else if let Some(u) = n.as_u64() {
                out.put(b"#u");
                out.put(&u.to_le_bytes());
            } else {
                out.put(b"#f");
                out.put(&n.as_f64().unwrap_or_default().to_bits().to_le_bytes());
            }
        }
        J::String(s) => {
            out.put(b"s");
            len(out, s.len());
            out.put(s.as_bytes());
        }
        J::Array(a) => {
            out.put(b"[");
            len(out, a.len());
            for item in a {
                encode(out, item);
            }
        }
        J::Object(m) => {
            out.put(b"{");
            len(out, m.len());
            for (k, item) in m {
                len(out, k.len());
                out.put(k.as_bytes());
                encode(out, item);
            }
        }
    }
}

/// A SHA-256 digest of a document's structure. The encoding is written to `scratch` (left
/// with it) and hashed in one call: cheaper than feeding the hasher its many small pieces.
pub(crate) fn document_digest(v: &serde_json::Value, scratch: &mut Vec<u8>) -> [u8; 32] {
    scratch.clear();
    encode(scratch, v);
    Sha256::digest(scratch.as_slice()).into()
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A 64-bit digest of a JSON value's structure, for telling apart values in the linter.
pub(crate) fn json_digest(v: &serde_json::Value) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut sink = HashSink(FixedState::default().build_hasher());
    encode(&mut sink, v);
    sink.0.finish()
}

/// Feeds a 64-bit hasher directly.
struct HashSink<H>(H);

impl<H: std::hash::Hasher> Sink for HashSink<H> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

#[cfg(test)]
mod tests {
    /// Feeds a hasher each piece as [`super::encode`] writes it.
    struct Pieces(sha2::Sha256);

    impl super::Sink for Pieces {
        fn put(&mut self, bytes: &[u8]) {
            sha2::Digest::update(&mut self.0, bytes);
        }
    }

    #[test]
    fn a_document_digest_is_the_hash_of_its_encoding_however_it_is_fed() {
        let doc = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "a", "Effect": "Allow", "Action": ["s3:Get*", "s3:List*"],
             "Resource": "arn:aws:s3:::b/*", "Condition": {"NumericLessThan": {"k": 3.5}}},
            {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*",
             "Condition": {"Bool": {"aws:MultiFactorAuthPresent": false}, "Null": {"x": true}}},
            {"Effect": "Allow", "Action": "s3:*", "Resource": [], "Big": 18_446_744_073_709_551_615u64,
             "Neg": -7, "Nothing": null}]});
        let mut pieces = Pieces(sha2::Sha256::default());
        super::encode(&mut pieces, &doc);
        let fed: [u8; 32] = sha2::Digest::finalize(pieces.0).into();
        let mut scratch = b"left over from an earlier document".to_vec();
        assert_eq!(super::document_digest(&doc, &mut scratch), fed);
        // Another document through the same buffer: nothing of the first is hashed.
        let other = serde_json::json!({"Version": "2012-10-17", "Statement": []});
        let mut fresh = Vec::new();
        assert_eq!(
            super::document_digest(&other, &mut scratch),
            super::document_digest(&other, &mut fresh)
        );
        assert_ne!(super::document_digest(&other, &mut scratch), fed);
    }

    #[cfg(unix)]
    #[test]
    fn revisions_stay_the_same_from_one_release_to_the_next() {
        // Replicas running different releases during a rollout must name the same set the
        // same way: the digest's encoding is fixed, and this pins it.
        let set = crate::PolicySet::builder()
            .policy_json(
                "read",
                r#"{"Version": "2012-10-17", "Statement": {"Sid": "R", "Effect": "Allow",
                    "Action": ["s3:Get*", "s3:List*"], "Resource": "arn:aws:s3:::docs/*",
                    "Condition": {"NumericLessThan": {"pdp:Risk": 3}}}}"#,
            )
            .policy_yaml(
                "deny",
                "Version: '2012-10-17'\nStatement:\n  - Effect: Deny\n    Action: '*'\n    Resource: '*'\n    Condition: {Bool: {aws:MultiFactorAuthPresent: false}}\n",
            )
            .bindings_yaml(
                "bindings.yaml",
                "roles: { Reader: { policies: [read], boundary: read } }\nguardrails: [deny]\n",
            )
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(set.revision(), "05fa738359c58439");
        // The same documents written in the other format: the same set, the same revision.
        let again = crate::PolicySet::builder()
            .policy_yaml(
                "read",
                "Version: '2012-10-17'\nStatement:\n  Sid: R\n  Effect: Allow\n  Action: [s3:Get*, s3:List*]\n  Resource: arn:aws:s3:::docs/*\n  Condition: {NumericLessThan: {pdp:Risk: 3}}\n",
            )
            .policy_json(
                "deny",
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*",
                    "Resource": "*", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": false}}}]}"#,
            )
            .bindings_yaml(
                "bindings.yaml",
                "roles: { Reader: { policies: [read], boundary: read } }\nguardrails: [deny]\n",
            )
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(again.revision(), set.revision());
    }
}
