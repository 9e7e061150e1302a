//! JSON text as nats-server's Go encoder writes it, where the difference is visible.
//!
//! Contract: [`pretty`] indents by two spaces like `json.MarshalIndent(v, "", "  ")`;
//! [`go_float`] writes a whole float without a fraction (`2`, not `2.0`) and any other float in
//! its shortest round-trip form, as Go does for `float64` fields.

use serde::{Serialize, Serializer};

use super::MonitoringError;

/// The largest magnitude Go still writes without an exponent.
const GO_PLAIN_FLOAT_LIMIT: f64 = 1e21;

/// `value` as indented JSON.
pub fn pretty(value: &impl Serialize) -> Result<Vec<u8>, MonitoringError> {
    Ok(serde_json::to_vec_pretty(value)?)
}

/// `value` as compact JSON.
pub fn compact(value: &impl Serialize) -> Result<Vec<u8>, MonitoringError> {
    Ok(serde_json::to_vec(value)?)
}

/// Serializes an `f64` field the way Go's encoder does.
pub fn go_float<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    let is_whole = value.is_finite() && value.fract() == 0.0;
    if is_whole && value.abs() < GO_PLAIN_FLOAT_LIMIT {
        // Exact: a whole float below 1e21 fits an i128 without rounding.
        serializer.serialize_i128(*value as i128)
    } else {
        serializer.serialize_f64(*value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Rates {
        #[serde(serialize_with = "go_float")]
        whole: f64,
        #[serde(serialize_with = "go_float")]
        fraction: f64,
        #[serde(serialize_with = "go_float")]
        zero: f64,
    }

    #[test]
    fn whole_floats_have_no_fraction() {
        let rates = Rates {
            whole: 2.0,
            fraction: 7.0 / 9.0,
            zero: 0.0,
        };
        let text = serde_json::to_string(&rates).map_err(|error| error.to_string());
        assert_eq!(
            text,
            Ok(r#"{"whole":2,"fraction":0.7777777777777778,"zero":0}"#.to_string())
        );
    }

    #[test]
    fn pretty_indents_by_two_spaces() {
        let value = serde_json::json!({"status": "ok", "list": []});
        let text = pretty(&value).map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        assert_eq!(
            text.ok().as_deref(),
            Some("{\n  \"list\": [],\n  \"status\": \"ok\"\n}")
        );
    }
}
