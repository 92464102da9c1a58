//! Parsing of `#[entity(...)]` and the `#[serde(...)]` options that change
//! what serde emits.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr, Meta, Path, Token};

use crate::case::RenameRule;

/// Collects several compile errors so they are all reported at once.
#[derive(Default)]
pub(crate) struct Errors {
    /// The combined errors so far.
    err: Option<syn::Error>,
}

impl Errors {
    /// Adds an error.
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.err {
            Some(all) => all.combine(err),
            None => self.err = Some(err),
        }
    }

    /// Adds an error at `span`.
    pub(crate) fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    /// `Err` with every collected error, or `Ok` if there is none.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.err {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// Struct-level `#[entity(name = "..", key = "..", partition_key = "..", version = "..")]`.
#[derive(Default)]
pub(crate) struct ContainerAttrs {
    /// `name = "..."`: the entity name.
    pub(crate) name: Option<LitStr>,
    /// `key = "..."`: the key field.
    pub(crate) key: Option<LitStr>,
    /// `partition_key = "..."`: the partition-key field.
    pub(crate) partition_key: Option<LitStr>,
    /// `version = "..."`: the version field.
    pub(crate) version: Option<LitStr>,
}

impl ContainerAttrs {
    /// Parses every `#[entity(...)]` attribute on the struct, reporting
    /// unknown and repeated options into `errors`.
    pub(crate) fn parse(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut out = ContainerAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("entity")) {
            let result = attr.parse_nested_meta(|meta| {
                let slot = if meta.path.is_ident("name") {
                    &mut out.name
                } else if meta.path.is_ident("key") {
                    &mut out.key
                } else if meta.path.is_ident("partition_key") {
                    &mut out.partition_key
                } else if meta.path.is_ident("version") {
                    &mut out.version
                } else {
                    errors.push(meta.error(format!(
                        "unknown entity option `{}`: expected `name = \"...\"`, `key = \"...\"`, \
                         `partition_key = \"...\"` or `version = \"...\"`",
                        path_to_string(&meta.path)
                    )));
                    return skip_value(&meta);
                };
                if !meta.input.peek(Token![=]) {
                    errors.push(meta.error(format!(
                        "expected `{} = \"...\"` on the struct",
                        path_to_string(&meta.path)
                    )));
                    return skip_value(&meta);
                }
                let lit: LitStr = meta.value()?.parse()?;
                if slot.is_some() {
                    errors.push(meta.error(format!(
                        "duplicate entity option `{}`",
                        path_to_string(&meta.path)
                    )));
                } else {
                    *slot = Some(lit);
                }
                Ok(())
            });
            if let Err(err) = result {
                errors.push(err);
            }
        }
        out
    }
}

/// Field-level `#[entity(key)]`, `#[entity(partition_key)]`, `#[entity(version)]`.
///
/// Each holds the option's path, for error spans.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `#[entity(key)]`.
    pub(crate) key: Option<Path>,
    /// `#[entity(partition_key)]`.
    pub(crate) partition_key: Option<Path>,
    /// `#[entity(version)]`.
    pub(crate) version: Option<Path>,
}

impl FieldAttrs {
    /// Parses every `#[entity(...)]` attribute on a field.
    pub(crate) fn parse(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut out = FieldAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("entity")) {
            let result = attr.parse_nested_meta(|meta| {
                let slot = if meta.path.is_ident("key") {
                    &mut out.key
                } else if meta.path.is_ident("partition_key") {
                    &mut out.partition_key
                } else if meta.path.is_ident("version") {
                    &mut out.version
                } else {
                    errors.push(meta.error(format!(
                        "unknown entity field option `{}`: expected `key`, `partition_key` or `version`",
                        path_to_string(&meta.path)
                    )));
                    return skip_value(&meta);
                };
                if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                    errors.push(meta.error(format!(
                        "`{0}` on a field takes no value: write `#[entity({0})]`",
                        path_to_string(&meta.path)
                    )));
                    return skip_value(&meta);
                }
                if slot.is_some() {
                    errors.push(meta.error(format!(
                        "duplicate `#[entity({})]` on this field",
                        path_to_string(&meta.path)
                    )));
                } else {
                    *slot = Some(meta.path.clone());
                }
                Ok(())
            });
            if let Err(err) = result {
                errors.push(err);
            }
        }
        out
    }
}

/// The struct-level serde options that matter for the schema.
#[derive(Default)]
pub(crate) struct SerdeContainer {
    /// `rename_all = "..."` (or `rename_all(serialize = "...")`).
    pub(crate) rename_all: Option<RenameRule>,
    /// `transparent`, which would make the entity serialize as its only field.
    pub(crate) transparent: Option<Path>,
}

impl SerdeContainer {
    /// Reads the struct's `#[serde(...)]` attributes. Malformed ones are
    /// ignored: serde's own derive reports them.
    pub(crate) fn parse(attrs: &[Attribute]) -> Self {
        let mut out = SerdeContainer::default();
        for meta in serde_metas(attrs) {
            if meta.path().is_ident("rename_all") {
                if let Some(rule) = serialize_name(&meta).and_then(|s| RenameRule::parse(&s)) {
                    out.rename_all = Some(rule);
                }
            } else if meta.path().is_ident("transparent") {
                out.transparent = Some(meta.path().clone());
            }
        }
        out
    }
}

/// The field-level serde options that matter for the schema.
#[derive(Default)]
pub(crate) struct SerdeField {
    /// `rename = "..."` (or `rename(serialize = "...")`).
    pub(crate) rename: Option<String>,
    /// `skip` or `skip_serializing`: the field is never emitted.
    pub(crate) skip: bool,
    /// `flatten`, which is not supported.
    pub(crate) flatten: Option<Path>,
}

impl SerdeField {
    /// Reads a field's `#[serde(...)]` attributes. Malformed ones are
    /// ignored: serde's own derive reports them.
    pub(crate) fn parse(attrs: &[Attribute]) -> Self {
        let mut out = SerdeField::default();
        for meta in serde_metas(attrs) {
            let path = meta.path();
            if path.is_ident("rename") {
                if let Some(name) = serialize_name(&meta) {
                    out.rename = Some(name);
                }
            } else if path.is_ident("skip") || path.is_ident("skip_serializing") {
                out.skip |= matches!(meta, Meta::Path(_));
            } else if path.is_ident("flatten") {
                out.flatten = Some(path.clone());
            }
        }
        out
    }
}

/// Every option inside every `#[serde(...)]` attribute.
fn serde_metas(attrs: &[Attribute]) -> Vec<Meta> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .filter_map(|a| {
            a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .collect()
}

/// The serialize-side string of `opt = "x"` or `opt(serialize = "x", ...)`.
fn serialize_name(meta: &Meta) -> Option<String> {
    match meta {
        Meta::NameValue(nv) => lit_str(&nv.value),
        Meta::List(list) => list
            .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            .ok()?
            .into_iter()
            .find_map(|m| match m {
                Meta::NameValue(nv) if nv.path.is_ident("serialize") => lit_str(&nv.value),
                _ => None,
            }),
        Meta::Path(_) => None,
    }
}

/// The value of a string-literal expression.
fn lit_str(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.value()),
        _ => None,
    }
}

/// Consumes the value of an option we are rejecting (`= expr` or `(...)`),
/// so parsing can go on and report later options too.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<proc_macro2::Group>()?;
    }
    Ok(())
}

/// `a::b` as a string, for messages.
pub(crate) fn path_to_string(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}
