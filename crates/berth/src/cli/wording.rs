//! The API's errors say what to send next in the API's terms (`?force=true`, a route); a CLI
//! user needs the flag or command that does it. Applied to every problem detail the CLI
//! prints, longest phrases first, so a route with its query becomes one command.

/// API phrase -> what a CLI user types instead. Blob's management has no CLI command yet:
/// its routes are kept whole (listed so the bare query hints below do not cut into them).
const CLI_WORDING: &[(&str, &str)] = &[
    (
        "DELETE /api/kv/disable?delete_data=true",
        "`berth kv disable --delete-data`",
    ),
    (
        "DELETE /api/blob/disable?delete_data=true",
        "DELETE /api/blob/disable?delete_data=true",
    ),
    ("GET /api/kv/status", "`berth kv status`"),
    ("?force=true", "--force"),
    ("?keep_data=true", "--keep-data"),
    ("?revoke=true", "--revoke"),
    ("?delete_data=true", "--delete-data"),
];

/// `detail` with every API hint the CLI has an equivalent for replaced by it: one pass, the
/// longest phrase starting at each place wins, so no replacement is rewritten again.
pub fn cli_wording(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len());
    let mut rest = detail;
    while let Some(c) = rest.chars().next() {
        let found = CLI_WORDING
            .iter()
            .filter(|(api, _)| rest.starts_with(api))
            .max_by_key(|(api, _)| api.len());
        match found {
            Some((api, cli)) => {
                out.push_str(cli);
                rest = &rest[api.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_hints_become_flags_and_commands() {
        let linked = "service \"db\" is linked to project(s) shop; unlink them first, or delete \
                      with ?force=true (which unlinks them; their databases go with the volume \
                      unless ?keep_data=true)";
        let said = cli_wording(linked);
        assert!(said.contains("delete with --force"), "{said}");
        assert!(said.contains("unless --keep-data"), "{said}");
        assert!(!said.contains('?'), "{said}");
        let backing = "To delete it with that data, use DELETE /api/kv/disable?delete_data=true";
        assert_eq!(
            cli_wording(backing),
            "To delete it with that data, use `berth kv disable --delete-data`"
        );
        let blob = "use DELETE /api/blob/disable?delete_data=true";
        assert_eq!(cli_wording(blob), blob);
        assert_eq!(cli_wording("no hint, ünïcode"), "no hint, ünïcode");
    }
}
