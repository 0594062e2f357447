//! The TypeScript SDK's Blob tests (`sdk/typescript/test/blob.test.js`, run by `node --test`)
//! against a running Berth with Blob enabled, as a project token.

mod common;
mod sdk_support;

use sdk_support::*;

#[tokio::test]
async fn typescript_sdk_blob() {
    let berth = berth_with_blob().await;
    let (_, token) = project_with_token(&berth).await;
    node::node_test(&berth, &token, &["blob.test.js"]);
}
