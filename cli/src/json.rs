//! The little JSON the command prints (`--json`): values built in order, written with
//! two-space indentation so that field order, and so the output, is stable.

use std::fmt::{self, Write};

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(u64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(&'static str, Json)>),
}

impl Json {
    pub fn string(s: impl Into<String>) -> Json {
        Json::String(s.into())
    }

    /// A string, or null for `None`.
    pub fn opt_string(s: Option<impl Into<String>>) -> Json {
        s.map_or(Json::Null, Json::string)
    }

    fn write(&self, out: &mut String, indent: usize) -> fmt::Result {
        let pad = |n: usize| "  ".repeat(n);
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => write!(out, "{b}")?,
            Json::Number(n) => write!(out, "{n}")?,
            Json::String(s) => write_string(out, s)?,
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Array(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&pad(indent + 1));
                    item.write(out, indent + 1)?;
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                write!(out, "{}]", pad(indent))?;
            }
            Json::Object(fields) if fields.is_empty() => out.push_str("{}"),
            Json::Object(fields) => {
                out.push_str("{\n");
                for (i, (key, value)) in fields.iter().enumerate() {
                    out.push_str(&pad(indent + 1));
                    write_string(out, key)?;
                    out.push_str(": ");
                    value.write(out, indent + 1)?;
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                write!(out, "{}}}", pad(indent))?;
            }
        }
        Ok(())
    }
}

fn write_string(out: &mut String, s: &str) -> fmt::Result {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32)?,
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(())
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write(&mut out, 0)?;
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_values_and_escapes() {
        let v = Json::Object(vec![
            ("a", Json::Array(vec![Json::Number(1), Json::Null])),
            ("b", Json::string("q\"\\\n\u{1}")),
            ("c", Json::Object(vec![])),
            ("d", Json::Bool(false)),
        ]);
        assert_eq!(
            v.to_string(),
            "{\n  \"a\": [\n    1,\n    null\n  ],\n  \"b\": \"q\\\"\\\\\\n\\u0001\",\n  \"c\": {},\n  \"d\": false\n}"
        );
    }
}
