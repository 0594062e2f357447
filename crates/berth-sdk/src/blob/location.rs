//! Where a blob is: callers name one by the `url` Berth gave them (`/api/blob/7/a.png`, or
//! absolute) or by its pathname within the project (`a.png`). Both become a request URL on this
//! client's server with every path segment percent-encoded.

use reqwest::Url;

use crate::Client;
use crate::error::{Error, Result};

const PREFIX: &str = "/api/blob/";

/// The download URL of `blob` (a url or a pathname).
pub(super) fn download_url(client: &Client, blob: &str) -> Result<Url> {
    let base = Url::parse(client.base_url())
        .map_err(|e| Error::Config(format!("base URL {:?}: {e}", client.base_url())))?;
    if let Some(path) = api_path(blob) {
        // A url Berth gave: its path on our server (an absolute one may name a proxy's host).
        return base
            .join(&path)
            .map_err(|e| Error::Config(format!("blob url {blob:?}: {e}")));
    }
    let project = client.project_id().ok_or_else(|| {
        Error::Config(format!(
            "{blob:?} is a pathname: pass the blob's url (from put or list), or name the \
             project with Client::with_project"
        ))
    })?;
    let mut url = base;
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|_| Error::Config("the base URL cannot hold a path".into()))?;
        segments.pop_if_empty().extend(["api", "blob"]);
        segments.push(&project.to_string());
        segments.extend(blob.trim_start_matches('/').split('/'));
    }
    Ok(url)
}

/// The pathname within the project of `blob` (a url or a pathname), for delete and copy.
pub(super) fn pathname(blob: &str) -> String {
    match api_path(blob) {
        Some(path) => {
            let rest = path.trim_start_matches(PREFIX);
            let rest = match rest.split_once('/') {
                Some((project, pathname)) if project.bytes().all(|b| b.is_ascii_digit()) => {
                    pathname
                }
                _ => rest,
            };
            percent_decode(rest)
        }
        None => blob.trim_start_matches('/').to_string(),
    }
}

/// The `/api/blob/...` path of a url, `None` for a plain pathname.
fn api_path(blob: &str) -> Option<String> {
    if blob.starts_with("http://") || blob.starts_with("https://") {
        let url = Url::parse(blob).ok()?;
        return url
            .path()
            .starts_with(PREFIX)
            .then(|| url.path().to_string());
    }
    blob.starts_with(PREFIX).then(|| blob.to_string())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_pathnames_resolve_on_our_server() {
        let client = Client::new("http://127.0.0.1:9/", "t");
        let url = download_url(&client, "/api/blob/7/a b/c.txt").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/api/blob/7/a%20b/c.txt");
        let url = download_url(&client, "https://proxy.example/api/blob/7/x%2Fy").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/api/blob/7/x%2Fy");
        assert!(download_url(&client, "a.txt").is_err(), "no project named");
        let url = download_url(&client.with_project(3), "dir/a #1?.txt").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/api/blob/3/dir/a%20%231%3F.txt"
        );
    }

    #[test]
    fn pathnames_come_out_of_urls() {
        assert_eq!(pathname("/api/blob/7/dir/a%20b.txt"), "dir/a b.txt");
        assert_eq!(pathname("http://h/api/blob/12/x.png"), "x.png");
        assert_eq!(
            pathname("dir/a%20b.txt"),
            "dir/a%20b.txt",
            "a pathname is kept"
        );
        assert_eq!(pathname("/dir/a.txt"), "dir/a.txt");
    }
}
