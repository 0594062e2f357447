//! Printing: tables for people, `--json` for scripts.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// A table of `columns` (JSON pointer, header) over rows.
pub fn table(rows: &[Value], columns: &[(&str, &str)]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(columns.iter().map(|(_, h)| *h));
    for row in rows {
        table.add_row(columns.iter().map(|(ptr, _)| cell(row.pointer(ptr))));
    }
    println!("{table}");
}

/// Key/value lines for one object.
pub fn details(value: &Value) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if let Some(inner) = v.as_object() {
                for (ik, iv) in inner {
                    table.add_row(vec![format!("{k}.{ik}"), cell(Some(iv))]);
                }
            } else {
                table.add_row(vec![k.clone(), cell(Some(v))]);
            }
        }
    }
    println!("{table}");
}

pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.get("slug")
                    .map(|s| cell(Some(s)))
                    .unwrap_or_else(|| cell(Some(v)))
            })
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

pub fn print(value: &Value, as_json: bool) {
    if as_json { json(value) } else { details(value) }
}
