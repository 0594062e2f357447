//! The TypeScript SDK's KV tests (`sdk/typescript/test/kv.test.js`, run by `node --test`)
//! against a running Berth with KV enabled, as a project token.

mod common;
mod sdk_support;

use sdk_support::*;

#[tokio::test]
async fn typescript_sdk_kv() {
    let berth = berth_with_kv().await;
    let (_, token) = project_with_token(&berth).await;
    node::node_test(&berth, &token, &["kv.test.js"]);
}
