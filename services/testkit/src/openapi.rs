//! Holds a service's OpenAPI description and its router to each other: every
//! documented operation exists and answers with a documented status and a
//! body of the documented shape; every other method on a documented path is
//! 405 (so no undocumented operation hides there).

use reqwest::Method;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The `$ref`-resolved schema.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => reference.strip_prefix("#/").map_or(&Value::Null, |path| {
            path.split('/').fold(spec, |node, key| &node[key])
        }),
        None => schema,
    }
}

/// Checks `value` against `schema` (types, required and listed properties,
/// `additionalProperties: false`, enums, date-time strings, array items).
///
/// # Errors
/// The first mismatch, with its JSON path.
pub fn validate(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(spec, schema);
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let fits = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => return Err(format!("{at}: unknown type {other}")),
    };
    if !fits {
        return Err(format!("{at}: {value} is not of type {}", schema["type"]));
    }
    if schema["format"] == "date-time" {
        let text = value.as_str().unwrap_or_default();
        if chrono_like_rfc3339(text).is_none() {
            return Err(format!("{at}: {text:?} is not an RFC 3339 date-time"));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Err(format!("{at}: required {name:?} is missing"));
            }
        }
        for (name, field) in object {
            match schema["properties"].get(name) {
                Some(property) => validate(spec, property, field, &format!("{at}.{name}"))?,
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    return Err(format!("{at}: {name:?} is not described"));
                }
                None => {}
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(spec, &schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// `Some` for `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn chrono_like_rfc3339(text: &str) -> Option<()> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .filter(|b| b.iter().all(u8::is_ascii_digit))
    };
    digits(0..4)?;
    digits(5..7)?;
    digits(8..10)?;
    digits(11..13)?;
    digits(14..16)?;
    digits(17..19)?;
    (bytes.get(4) == Some(&b'-') && bytes.get(10).is_some_and(|b| *b == b'T' || *b == b't'))
        .then_some(())?;
    let zone = text[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    (zone == "Z" || zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')))
        .then_some(())
}

/// Calls every documented operation of the service at `base` (path
/// parameters set to `path_value`; bodies from the request schema's
/// `example`) and every undocumented method of each documented path.
///
/// # Errors
/// Every mismatch found, one per line.
pub async fn check_conformance(
    http: &reqwest::Client,
    base: &str,
    spec: &Value,
    path_value: &str,
) -> Result<usize, String> {
    let mut problems = Vec::new();
    let mut checked = 0;
    let paths = spec["paths"].as_object().ok_or("no paths")?;
    for (template, item) in paths {
        let path = template.replace("{id}", path_value);
        for method in METHODS {
            let operation = &item[method];
            let verb =
                Method::from_bytes(method.to_uppercase().as_bytes()).map_err(|e| e.to_string())?;
            let mut request = http.request(verb, format!("{base}{path}"));
            if let Some(schema) = operation["requestBody"]["content"]["application/json"]
                .get("schema")
                .map(|s| resolve(spec, s))
            {
                request = request.json(&schema["example"]);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            checked += 1;
            if operation.is_null() {
                if status != reqwest::StatusCode::METHOD_NOT_ALLOWED {
                    problems.push(format!(
                        "{} {template}: undocumented, answered {status} (expected 405)",
                        method.to_uppercase()
                    ));
                }
                continue;
            }
            let documented = &operation["responses"][status.as_str()];
            if documented.is_null() {
                problems.push(format!(
                    "{} {template}: status {status} is not documented",
                    method.to_uppercase()
                ));
                continue;
            }
            if let Some(schema) = documented["content"]["application/json"].get("schema") {
                match response.json::<Value>().await {
                    Ok(body) => {
                        if let Err(e) = validate(spec, schema, &body, "body") {
                            problems.push(format!(
                                "{} {template} {status}: {e}",
                                method.to_uppercase()
                            ));
                        }
                    }
                    Err(e) => problems.push(format!(
                        "{} {template} {status}: not JSON: {e}",
                        method.to_uppercase()
                    )),
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({"components": {"schemas": {"U": {
            "type": "object", "required": ["id", "at"], "additionalProperties": false,
            "properties": {"id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
                           "kind": {"type": "string", "enum": ["a", "b"]}}}}}})
    }

    #[test]
    fn a_matching_value_passes_and_each_kind_of_mismatch_is_named() {
        let spec = spec();
        let schema = json!({"type": "array", "items": {"$ref": "#/components/schemas/U"}});
        let ok = json!([{"id": 1, "at": "2025-05-25T10:00:00.123456Z", "kind": "a"},
                        {"id": 2, "at": "2025-05-25T10:00:00+02:00"}]);
        assert_eq!(validate(&spec, &schema, &ok, "body"), Ok(()));
        for (bad, needle) in [
            (json!([{"at": "2025-05-25T10:00:00Z"}]), "required \"id\""),
            (json!([{"id": "1", "at": "2025-05-25T10:00:00Z"}]), "type"),
            (json!([{"id": 1, "at": "yesterday"}]), "RFC 3339"),
            (
                json!([{"id": 1, "at": "2025-05-25T10:00:00Z", "kind": "c"}]),
                "not one of",
            ),
            (
                json!([{"id": 1, "at": "2025-05-25T10:00:00Z", "x": 1}]),
                "not described",
            ),
            (json!({"id": 1}), "type"),
        ] {
            let error = validate(&spec, &schema, &bad, "body").unwrap_err();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }
}
