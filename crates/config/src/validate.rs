//! Checks that need more than one value's type: required keys, ranges, mutually exclusive settings.

use crate::convert::Cx;
use crate::model::Config;

/// Adds errors and warnings about `config` to `cx`.
pub fn validate(config: &Config, cx: &mut Cx) {
    if config.name.is_none() {
        cx.error_at("name", "is not defined");
    }
    if config.scope.is_none() {
        cx.error_at("scope", "is not defined");
    }
}
