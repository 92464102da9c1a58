//! Translation of a text query and a neutral filter into tantivy queries.

use std::ops::Bound;

use ::tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, EmptyQuery, ExistsQuery, Occur, PhraseQuery, Query,
    RangeQuery, TermQuery, TermSetQuery,
};
use ::tantivy::schema::{Field, IndexRecordOption};
use ::tantivy::tokenizer::TextAnalyzer;
use ::tantivy::{DateTime, Term};

use crate::FieldKind;
use crate::Value;
use crate::query::{CmpOp, Filter};
use crate::store::search::{TextQuery, TextTerm};

/// A typed field of the index: what filters and facets use.
pub(super) struct ValueField {
    pub name: String,
    pub kind: FieldKind,
    pub field: Field,
    pub tantivy_name: String,
}

/// The query for web-search text over the text fields; `AllQuery` when empty.
pub(super) fn text_query(
    text: &str,
    fields: &[Field],
    analyzer: &mut TextAnalyzer,
) -> Box<dyn Query> {
    let parsed = TextQuery::parse(text);
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for group in &parsed.groups {
        let mut terms: Vec<(bool, Box<dyn Query>)> = Vec::new();
        for t in group {
            if let Some(q) = term_query(t, fields, analyzer) {
                terms.push((t.negated, q));
            }
        }
        match terms.len() {
            0 => {} // only words the analyzer drops
            1 => {
                let (negated, q) = terms.pop().expect("one term");
                clauses.push((if negated { Occur::MustNot } else { Occur::Must }, q));
            }
            _ => {
                let any: Vec<(Occur, Box<dyn Query>)> = terms
                    .into_iter()
                    .map(|(negated, q)| (Occur::Should, if negated { not(q) } else { q }))
                    .collect();
                clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
            }
        }
    }
    if !clauses.iter().any(|(o, _)| *o == Occur::Must) {
        // Nothing required: every document (minus the exclusions), score 0.
        clauses.push((
            Occur::Must,
            Box::new(ConstScoreQuery::new(Box::new(AllQuery), 0.0)),
        ));
    }
    Box::new(BooleanQuery::new(clauses))
}

/// One word or phrase, in any text field.
fn term_query(
    t: &TextTerm,
    fields: &[Field],
    analyzer: &mut TextAnalyzer,
) -> Option<Box<dyn Query>> {
    let mut tokens = Vec::new();
    for w in &t.words {
        let mut stream = analyzer.token_stream(w);
        while let Some(tok) = stream.next() {
            tokens.push(tok.text.clone());
        }
    }
    if tokens.is_empty() {
        return None;
    }
    let per_field: Vec<(Occur, Box<dyn Query>)> = fields
        .iter()
        .map(|&f| {
            let q: Box<dyn Query> = if tokens.len() == 1 {
                Box::new(TermQuery::new(
                    Term::from_field_text(f, &tokens[0]),
                    IndexRecordOption::WithFreqs,
                ))
            } else {
                Box::new(PhraseQuery::new(
                    tokens.iter().map(|t| Term::from_field_text(f, t)).collect(),
                ))
            };
            (Occur::Should, q)
        })
        .collect();
    Some(Box::new(BooleanQuery::new(per_field)))
}

fn not(q: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
        (Occur::MustNot, q),
    ]))
}

/// The term of a value in a typed field; `Err` says why it cannot be one.
fn term(f: &ValueField, v: &Value) -> Result<Term, String> {
    Ok(match (f.kind, v) {
        (FieldKind::String, Value::String(s)) => Term::from_field_text(f.field, s),
        (FieldKind::Uuid, Value::Uuid(u)) => {
            Term::from_field_text(f.field, &u.hyphenated().to_string())
        }
        (FieldKind::Uuid, Value::String(s)) => Term::from_field_text(f.field, s),
        (FieldKind::Int, Value::I64(i)) => Term::from_field_i64(f.field, *i),
        (FieldKind::Float, Value::F64(x)) => Term::from_field_f64(f.field, *x),
        (FieldKind::Float, Value::I64(i)) => Term::from_field_f64(f.field, *i as f64),
        (FieldKind::Bool, Value::Bool(b)) => Term::from_field_bool(f.field, *b),
        (FieldKind::Timestamp, Value::Timestamp(t)) => Term::from_field_date_for_search(
            f.field,
            DateTime::from_timestamp_micros(t.timestamp_micros()),
        ),
        (kind, v) => {
            return Err(format!(
                "a {} value cannot be compared with the {} field `{}`",
                v.type_name(),
                kind.name(),
                f.name
            ));
        }
    })
}

/// The filter as a query that scores 0; `Err` names what cannot be done.
pub(super) fn filter_query(
    filter: &Filter,
    fields: &[ValueField],
) -> Result<Box<dyn Query>, FilterError> {
    Ok(Box::new(ConstScoreQuery::new(
        filter_inner(filter, fields)?,
        0.0,
    )))
}

/// Why a filter cannot be translated.
pub(super) enum FilterError {
    /// An operator this store cannot evaluate.
    Unsupported(String),
    /// A bad field or operand.
    Invalid(String),
}

fn lookup<'a>(fields: &'a [ValueField], name: &str) -> Result<&'a ValueField, FilterError> {
    fields.iter().find(|f| f.name == name).ok_or_else(|| {
        FilterError::Invalid(format!(
            "field `{name}` is not a filter field of this search index; add it to the entity's `search.filters`"
        ))
    })
}

fn filter_inner(filter: &Filter, fields: &[ValueField]) -> Result<Box<dyn Query>, FilterError> {
    let inv = FilterError::Invalid;
    Ok(match filter {
        Filter::Cmp { field, op, value } => {
            let f = lookup(fields, field)?;
            if value.is_null() {
                return Err(inv(format!("`{field}` is compared with null; use is_null")));
            }
            let t = term(f, value).map_err(inv)?;
            match op {
                CmpOp::Eq => Box::new(TermQuery::new(t, IndexRecordOption::Basic)),
                CmpOp::Ne => not(Box::new(TermQuery::new(t, IndexRecordOption::Basic))),
                CmpOp::Lt => Box::new(RangeQuery::new(Bound::Unbounded, Bound::Excluded(t))),
                CmpOp::Le => Box::new(RangeQuery::new(Bound::Unbounded, Bound::Included(t))),
                CmpOp::Gt => Box::new(RangeQuery::new(Bound::Excluded(t), Bound::Unbounded)),
                CmpOp::Ge => Box::new(RangeQuery::new(Bound::Included(t), Bound::Unbounded)),
            }
        }
        Filter::In { field, values } => {
            let f = lookup(fields, field)?;
            let terms = values
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| term(f, v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(inv)?;
            if terms.is_empty() {
                Box::new(EmptyQuery)
            } else {
                Box::new(TermSetQuery::new(terms))
            }
        }
        Filter::IsNull(field) => {
            let f = lookup(fields, field)?;
            not(Box::new(ExistsQuery::new(f.tantivy_name.clone(), false)))
        }
        Filter::And(v) if v.is_empty() => Box::new(AllQuery),
        Filter::And(v) => Box::new(BooleanQuery::new(
            v.iter()
                .map(|f| Ok((Occur::Must, filter_inner(f, fields)?)))
                .collect::<Result<Vec<_>, FilterError>>()?,
        )),
        Filter::Or(v) => {
            if v.is_empty() {
                Box::new(EmptyQuery)
            } else {
                Box::new(BooleanQuery::new(
                    v.iter()
                        .map(|f| Ok((Occur::Should, filter_inner(f, fields)?)))
                        .collect::<Result<Vec<_>, FilterError>>()?,
                ))
            }
        }
        Filter::Not(f) => not(filter_inner(f, fields)?),
        Filter::Prefix { .. } | Filter::Contains { .. } => {
            return Err(FilterError::Unsupported(filter.capability()));
        }
    })
}
