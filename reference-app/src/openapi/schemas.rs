//! The component schemas: money's, and the registry that collects what a document refers to
//! and closes its objects.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::json;
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::api::money::Money;
use crate::api::problem::Problem;

impl PartialSchema for Money {
    /// A JSON number of at least 0 with at most two decimals.
    ///
    /// "At most two decimals" is said in words, not as `multipleOf: 0.01`: validators test
    /// `multipleOf` in binary floating point, where 0.07 / 0.01 is 7.000000000000001, so they
    /// would refuse about one amount in seven (0.07, 0.14, 0.29, ...) that the service sends.
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0))
            .description(Some(
                "An amount of money: a JSON number of at least 0 with at most two decimals \
                 (`25.00`, `25.5`, `25`). Requests with more decimals, a negative amount, an \
                 exponent or more than 1000000000.00 are refused (422).",
            ))
            .examples([json!(25.5)])
            .into()
    }
}

impl ToSchema for Money {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Money")
    }
}

/// The component schemas a document refers to.
#[derive(Default)]
pub(super) struct Schemas(pub(super) BTreeMap<String, RefOr<Schema>>);

impl Schemas {
    /// Registers `T` (and what it refers to); returns a reference to it.
    pub(super) fn of<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let mut found = Vec::new();
        T::schemas(&mut found);
        found.push((T::name().into_owned(), T::schema()));
        self.0.extend(found);
        Ref::from_schema_name(T::name()).into()
    }

    /// The schemas with their objects closed: flattened structs (`allOf`) merged into one
    /// object, and no property allowed that the object does not name.
    pub(super) fn closed(mut self) -> BTreeMap<String, RefOr<Schema>> {
        self.of::<Problem>();
        let all = self.0.clone();
        self.0
            .into_iter()
            .map(|(name, schema)| {
                let schema = match schema {
                    RefOr::T(schema) => RefOr::T(close(schema, &all)),
                    reference => reference,
                };
                (name, schema)
            })
            .collect()
    }
}

/// `schema` with no other properties allowed than it names (maps keep their value schema).
fn close(schema: Schema, all: &BTreeMap<String, RefOr<Schema>>) -> Schema {
    match schema {
        Schema::Object(mut object) => {
            if !object.properties.is_empty() && object.additional_properties.is_none() {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
            Schema::Object(object)
        }
        Schema::AllOf(all_of) => {
            let mut merged = Object::new();
            merged.schema_type = Type::Object.into();
            merged.description = all_of.description.clone();
            for part in &all_of.items {
                let part = match part {
                    RefOr::T(Schema::Object(o)) => Some(o),
                    RefOr::Ref(r) => r
                        .ref_location
                        .rsplit('/')
                        .next()
                        .and_then(|name| all.get(name))
                        .and_then(|s| match s {
                            RefOr::T(Schema::Object(o)) => Some(o),
                            _ => None,
                        }),
                    _ => None,
                };
                let Some(part) = part else {
                    // Not a plain object: leave the composition as it is.
                    return Schema::AllOf(all_of);
                };
                merged.properties.extend(part.properties.clone());
                merged.required.extend(part.required.iter().cloned());
            }
            close(Schema::Object(merged), all)
        }
        other => other,
    }
}
