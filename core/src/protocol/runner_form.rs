//! A runner's own serialized form of a report (pytest's `pytest_report_to_serializable`), kept
//! as the JSON text the worker sent: herd never looks inside it, so it is neither parsed into a
//! tree nor built again, only checked to be JSON and written out as it came.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// One serialized report, as JSON text (see the module doc).
#[derive(Clone)]
pub struct RunnerForm(Box<RawValue>);

impl RunnerForm {
    /// The form of `value` (for tests and for forms herd writes itself).
    pub fn of<T: Serialize>(value: &T) -> RunnerForm {
        // Serializing plain data to JSON text cannot fail.
        RunnerForm(serde_json::value::to_raw_value(value).expect("a JSON value serializes"))
    }

    /// Its JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Its JSON, parsed (for tests and the rare reader).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.json()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for RunnerForm {
    fn eq(&self, other: &RunnerForm) -> bool {
        self.json() == other.json()
    }
}

impl fmt::Debug for RunnerForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

impl Serialize for RunnerForm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Only from serde_json's own deserializer (see [`super::decode_worker_frame`]): serde's
/// buffered (internally tagged) path cannot carry raw JSON text.
impl<'de> Deserialize<'de> for RunnerForm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RunnerForm, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(RunnerForm)
    }
}
