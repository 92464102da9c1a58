//! Validation of the derive input and generation of the `Entity` impl.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Generics, Ident, LitStr, Path, Type};

use crate::attrs::{ContainerAttrs, Errors, FieldAttrs, SerdeContainer, SerdeField};
use crate::case::snake_case;

/// One named field of the struct, as the schema sees it.
struct FieldInfo<'a> {
    /// The Rust identifier.
    ident: &'a Ident,
    /// The Rust type.
    ty: &'a Type,
    /// The identifier without `r#`.
    rust_name: String,
    /// The name serde emits (after `rename` / `rename_all`).
    serde_name: String,
    /// `#[serde(skip)]` or `#[serde(skip_serializing)]`.
    skipped: bool,
    /// The field's `#[entity(...)]` options.
    attrs: FieldAttrs,
}

/// The special roles a field can play.
#[derive(Clone, Copy)]
enum Role {
    /// The entity key.
    Key,
    /// The version field.
    Version,
    /// The partition key.
    PartitionKey,
}

impl Role {
    /// The option name, as written in `#[entity(...)]`.
    fn option(self) -> &'static str {
        match self {
            Role::Key => "key",
            Role::Version => "version",
            Role::PartitionKey => "partition_key",
        }
    }

    /// The role in prose.
    fn noun(self) -> &'static str {
        match self {
            Role::Key => "the key",
            Role::Version => "the version field",
            Role::PartitionKey => "the partition key",
        }
    }

    /// The field-level marker for this role, if the field has one.
    fn marker(self, attrs: &FieldAttrs) -> Option<&Path> {
        match self {
            Role::Key => attrs.key.as_ref(),
            Role::Version => attrs.version.as_ref(),
            Role::PartitionKey => attrs.partition_key.as_ref(),
        }
    }
}

/// Which field plays a role, and where that was declared (for error spans).
#[derive(Clone, Copy)]
struct Declared {
    /// Index into the field list.
    field: usize,
    /// The declaring `key = "..."` literal, `#[entity(key)]` option or, for a
    /// default key, the field's identifier.
    span: Span,
}

/// Expands `#[derive(Entity)]` for `input`, or returns every error found.
pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let container = ContainerAttrs::parse(&input.attrs, &mut errors);
    check_generics(&input.generics, &mut errors);

    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => named,
            Fields::Unnamed(_) => return Err(not_named(input, "a tuple struct", errors)),
            Fields::Unit => return Err(not_named(input, "a unit struct", errors)),
        },
        Data::Enum(_) => return Err(not_named(input, "an enum", errors)),
        Data::Union(_) => return Err(not_named(input, "a union", errors)),
    };

    let serde = SerdeContainer::parse(&input.attrs);
    if let Some(transparent) = &serde.transparent {
        errors.push(syn::Error::new_spanned(
            transparent,
            "`#[serde(transparent)]` is not supported: an entity must serialize as a map of its fields",
        ));
    }

    let fields: Vec<FieldInfo<'_>> = named
        .named
        .iter()
        .map(|field| {
            let ident = field.ident.as_ref().expect("named field");
            let rust_name = ident.unraw().to_string();
            let attrs = FieldAttrs::parse(&field.attrs, &mut errors);
            let serde_field = SerdeField::parse(&field.attrs);
            if let Some(flatten) = &serde_field.flatten {
                errors.push(syn::Error::new_spanned(
                    flatten,
                    "`#[serde(flatten)]` is not supported: nest the struct as a json field instead",
                ));
            }
            let serde_name = match (serde_field.rename, serde.rename_all) {
                (Some(rename), _) => rename,
                (None, Some(rule)) => rule.apply_to_field(&rust_name),
                (None, None) => rust_name.clone(),
            };
            FieldInfo {
                ident,
                ty: &field.ty,
                rust_name,
                serde_name,
                skipped: serde_field.skip,
                attrs,
            }
        })
        .collect();

    let ident = &input.ident;
    let key = resolve(
        Role::Key,
        container.key.as_ref(),
        ident,
        &fields,
        &mut errors,
    );
    let key = match key {
        Resolved::Found(key) => Some(key),
        Resolved::Invalid => None,
        Resolved::Undeclared => match fields.iter().position(|f| f.rust_name == "id") {
            Some(i) => Some(Declared {
                field: i,
                span: fields[i].ident.span(),
            }),
            None => {
                errors.push(syn::Error::new_spanned(
                    ident,
                    format!(
                        "`{ident}` has no key field: add `#[entity(key = \"field\")]` to the struct, \
                         mark a field with `#[entity(key)]`, or name a field `id`"
                    ),
                ));
                None
            }
        },
    };
    let version = resolve(
        Role::Version,
        container.version.as_ref(),
        ident,
        &fields,
        &mut errors,
    )
    .found();
    let partition = resolve(
        Role::PartitionKey,
        container.partition_key.as_ref(),
        ident,
        &fields,
        &mut errors,
    )
    .found();

    if let Some(key) = key {
        if fields[key.field].skipped {
            errors.at(
                key.span,
                format!(
                    "the key field `{}` cannot be `#[serde(skip)]`: the key must be serialized",
                    fields[key.field].rust_name
                ),
            );
        }
    }
    if let Some(version) = version {
        let field = &fields[version.field];
        if field.skipped {
            errors.at(
                version.span,
                format!(
                    "the version field `{}` cannot be `#[serde(skip)]`: the store writes the version into the serialized entity",
                    field.rust_name
                ),
            );
        }
        if key.is_some_and(|k| k.field == version.field) {
            errors.at(
                version.span,
                format!(
                    "field `{}` cannot be both the key and the version field",
                    field.rust_name
                ),
            );
        }
    }
    if let Some(partition) = partition {
        let field = &fields[partition.field];
        if field.skipped {
            errors.at(
                partition.span,
                format!(
                    "the partition key `{}` cannot be `#[serde(skip)]`: it must be serialized",
                    field.rust_name
                ),
            );
        }
        if version.is_some_and(|v| v.field == partition.field) {
            errors.at(
                partition.span,
                format!(
                    "field `{}` cannot be both the partition key and the version field",
                    field.rust_name
                ),
            );
        }
    }

    let name = match &container.name {
        Some(lit) => {
            let name = lit.value();
            if name.is_empty() {
                errors.push(syn::Error::new_spanned(
                    lit,
                    "the entity name cannot be empty",
                ));
            }
            name
        }
        None => snake_case(&ident.unraw().to_string()),
    };

    errors.finish()?;
    let Some(key) = key else {
        return Err(syn::Error::new_spanned(ident, "no key field"));
    };
    Ok(generate(
        ident, &name, &fields, key.field, version, partition,
    ))
}

/// The outcome of looking up the field that plays a role.
enum Resolved {
    /// Declared and found.
    Found(Declared),
    /// Declared, but wrongly (an error was reported).
    Invalid,
    /// Not declared at all.
    Undeclared,
}

impl Resolved {
    /// The field, if one was declared and found.
    fn found(self) -> Option<Declared> {
        match self {
            Resolved::Found(d) => Some(d),
            Resolved::Invalid | Resolved::Undeclared => None,
        }
    }
}

/// Finds the field playing `role`, from the struct-level `role = "..."`
/// option and the field-level `#[entity(role)]` markers, reporting a missing
/// field or a second declaration.
fn resolve(
    role: Role,
    container: Option<&LitStr>,
    ident: &Ident,
    fields: &[FieldInfo<'_>],
    errors: &mut Errors,
) -> Resolved {
    let mut found: Option<Declared> = None;
    let mut declared = false;
    if let Some(lit) = container {
        declared = true;
        let wanted = lit.value();
        let index = fields
            .iter()
            .position(|f| f.rust_name == wanted)
            .or_else(|| fields.iter().position(|f| f.serde_name == wanted));
        match index {
            Some(field) => {
                found = Some(Declared {
                    field,
                    span: lit.span(),
                })
            }
            None => {
                let names: Vec<&str> = fields.iter().map(|f| f.rust_name.as_str()).collect();
                errors.push(syn::Error::new_spanned(
                    lit,
                    format!(
                        "`{}` has no field named `{wanted}` (its fields: {})",
                        ident,
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    for (i, field) in fields.iter().enumerate() {
        let Some(marker) = role.marker(&field.attrs) else {
            continue;
        };
        let option = role.option();
        if let Some(lit) = container {
            errors.push(syn::Error::new_spanned(
                marker,
                format!(
                    "{} is already declared by `{option} = {:?}` on the struct: declare it only once",
                    role.noun(),
                    lit.value()
                ),
            ));
        } else if let Some(first) = found {
            errors.push(syn::Error::new_spanned(
                marker,
                format!(
                    "duplicate `#[entity({option})]`: field `{}` is already {}",
                    fields[first.field].rust_name,
                    role.noun()
                ),
            ));
        } else {
            declared = true;
            found = Some(Declared {
                field: i,
                span: marker.span(),
            });
        }
    }
    match found {
        Some(d) => Resolved::Found(d),
        None if declared => Resolved::Invalid,
        None => Resolved::Undeclared,
    }
}

/// Rejects generic parameters and where-clauses: entities are concrete types.
fn check_generics(generics: &Generics, errors: &mut Errors) {
    const MSG: &str =
        "`#[derive(Entity)]` does not support generics: an entity must be a concrete type";
    if !generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(&generics.params, MSG));
    } else if let Some(where_clause) = &generics.where_clause {
        errors.push(syn::Error::new_spanned(where_clause, MSG));
    }
}

/// The error for anything but a struct with named fields, combined with the
/// errors found so far.
fn not_named(input: &DeriveInput, what: &str, mut errors: Errors) -> syn::Error {
    errors.push(syn::Error::new_spanned(
        &input.ident,
        format!(
            "`#[derive(Entity)]` needs a struct with named fields, but `{}` is {what}",
            input.ident
        ),
    ));
    match errors.finish() {
        Err(err) => err,
        Ok(()) => unreachable!("an error was just pushed"),
    }
}

/// Generates the `Entity` impl (and the version-type assertion).
fn generate(
    ident: &Ident,
    name: &str,
    fields: &[FieldInfo<'_>],
    key: usize,
    version: Option<Declared>,
    partition: Option<Declared>,
) -> TokenStream {
    let version_index = version.map(|v| v.field);
    let field_defs: Vec<TokenStream> = fields
        .iter()
        .enumerate()
        .filter(|&(i, f)| !f.skipped && Some(i) != version_index)
        .map(|(_, f)| {
            let field_name = &f.serde_name;
            let ty = f.ty;
            let probe = quote_spanned! {ty.span()=>
                {
                    // Only one of the two is picked by autoref resolution.
                    #[allow(unused_imports)]
                    use ::polyrouter::entity::__private::{JsonType as _, KnownType as _};
                    (&&::polyrouter::entity::__private::Probe::<#ty>(::core::marker::PhantomData))
                        .field_type()
                }
            };
            quote! {
                ::polyrouter::FieldDef { name: #field_name, ty: #probe }
            }
        })
        .collect();
    let count = Literal::usize_unsuffixed(field_defs.len());

    let key_field = &fields[key];
    let key_name = &key_field.serde_name;
    let key_ident = key_field.ident;
    let key_ty = key_field.ty;
    let key_kind = quote_spanned! {key_ty.span()=>
        <#key_ty as ::polyrouter::entity::__private::KeyField>::KIND
    };
    let to_key = quote_spanned! {key_ty.span()=>
        <#key_ty as ::polyrouter::entity::__private::KeyField>::to_key
    };

    let option = |d: Option<Declared>| match d {
        Some(d) => {
            let n = &fields[d.field].serde_name;
            quote!(::core::option::Option::Some(#n))
        }
        None => quote!(::core::option::Option::None),
    };
    let version_name = option(version);
    let partition_name = option(partition);

    let version_check = version.map(|v| {
        let ty = fields[v.field].ty;
        quote_spanned! {ty.span()=>
            const _: fn() = || {
                fn check<T: ::polyrouter::entity::__private::VersionField>() {}
                check::<#ty>();
            };
        }
    });

    quote! {
        #[automatically_derived]
        impl ::polyrouter::Entity for #ident {
            fn schema() -> &'static ::polyrouter::Schema {
                static __POLYROUTER_FIELDS: ::std::sync::OnceLock<[::polyrouter::FieldDef; #count]> =
                    ::std::sync::OnceLock::new();
                static __POLYROUTER_SCHEMA: ::std::sync::OnceLock<::polyrouter::Schema> =
                    ::std::sync::OnceLock::new();
                __POLYROUTER_SCHEMA.get_or_init(|| ::polyrouter::Schema {
                    name: #name,
                    key: #key_name,
                    key_kind: #key_kind,
                    partition_key: #partition_name,
                    version: #version_name,
                    fields: __POLYROUTER_FIELDS.get_or_init(|| [#(#field_defs),*]),
                })
            }

            fn key(&self) -> ::polyrouter::Key {
                #to_key(&self.#key_ident)
            }
        }

        #version_check
    }
}
