//! Collectors: the top hits after a keyset position, and facet counts.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use ::tantivy::collector::{Collector, SegmentCollector};
use ::tantivy::columnar::StrColumn;
use ::tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::KEY_FIELD;

/// A hit while collecting: ordered so that the *worse* hit is greater
/// (lower score, or equal score and a greater key), so a max-heap's top is
/// the hit to drop first.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Ranked {
    pub score: Score,
    pub key: String,
}

impl Eq for Ranked {}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.key.cmp(&other.key))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The best `limit` hits strictly after `after` in (score desc, key asc) order.
pub(super) struct TopAfter {
    pub limit: usize,
    pub after: Option<Ranked>,
}

pub(super) struct TopAfterSegment {
    keys: StrColumn,
    limit: usize,
    after: Option<Ranked>,
    heap: BinaryHeap<Ranked>,
    buf: String,
}

fn key_column(segment: &SegmentReader) -> ::tantivy::Result<StrColumn> {
    segment.fast_fields().str(KEY_FIELD)?.ok_or_else(|| {
        ::tantivy::TantivyError::SchemaError(format!("the index has no `{KEY_FIELD}` column"))
    })
}

impl Collector for TopAfter {
    type Fruit = Vec<Ranked>;
    type Child = TopAfterSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> ::tantivy::Result<Self::Child> {
        Ok(TopAfterSegment {
            keys: key_column(segment)?,
            limit: self.limit,
            after: self.after.clone(),
            heap: BinaryHeap::with_capacity(self.limit + 1),
            buf: String::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Ranked>>) -> ::tantivy::Result<Vec<Ranked>> {
        let mut all: Vec<Ranked> = fruits.into_iter().flatten().collect();
        all.sort();
        all.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for TopAfterSegment {
    type Fruit = Vec<Ranked>;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.limit == 0 {
            return;
        }
        // Cheap checks on the score before reading the key.
        if let Some(a) = &self.after {
            if score > a.score {
                return;
            }
        }
        if self.heap.len() >= self.limit {
            if let Some(worst) = self.heap.peek() {
                if score < worst.score {
                    return;
                }
            }
        }
        let Some(ord) = self.keys.term_ords(doc).next() else {
            return;
        };
        self.buf.clear();
        if !matches!(self.keys.ord_to_str(ord, &mut self.buf), Ok(true)) {
            return;
        }
        let hit = Ranked {
            score,
            key: self.buf.clone(),
        };
        if let Some(a) = &self.after {
            if hit <= *a {
                return; // at or before the position
            }
        }
        if self.heap.len() < self.limit {
            self.heap.push(hit);
        } else if let Some(worst) = self.heap.peek() {
            if hit < *worst {
                self.heap.pop();
                self.heap.push(hit);
            }
        }
    }

    fn harvest(self) -> Vec<Ranked> {
        self.heap.into_vec()
    }
}

/// Counts of each value of some string fast fields over the matching documents.
pub(super) struct Facets {
    pub fields: Vec<String>,
}

pub(super) struct FacetsSegment {
    columns: Vec<Option<StrColumn>>,
    counts: Vec<Vec<u64>>,
}

impl Collector for Facets {
    type Fruit = Vec<HashMap<String, u64>>;
    type Child = FacetsSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> ::tantivy::Result<Self::Child> {
        let mut columns = Vec::with_capacity(self.fields.len());
        let mut counts = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let col = segment.fast_fields().str(f)?;
            counts.push(vec![0; col.as_ref().map(|c| c.num_terms()).unwrap_or(0)]);
            columns.push(col);
        }
        Ok(FacetsSegment { columns, counts })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<Vec<HashMap<String, u64>>>,
    ) -> ::tantivy::Result<Vec<HashMap<String, u64>>> {
        let mut out = vec![HashMap::new(); self.fields.len()];
        for fruit in fruits {
            for (i, m) in fruit.into_iter().enumerate() {
                for (v, n) in m {
                    *out[i].entry(v).or_insert(0) += n;
                }
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for FacetsSegment {
    type Fruit = Vec<HashMap<String, u64>>;

    fn collect(&mut self, doc: DocId, _: Score) {
        for (col, counts) in self.columns.iter().zip(self.counts.iter_mut()) {
            if let Some(col) = col {
                for ord in col.term_ords(doc) {
                    counts[ord as usize] += 1;
                }
            }
        }
    }

    fn harvest(self) -> Vec<HashMap<String, u64>> {
        let mut out = Vec::with_capacity(self.columns.len());
        let mut buf = String::new();
        for (col, counts) in self.columns.iter().zip(self.counts) {
            let mut m = HashMap::new();
            if let Some(col) = col {
                for (ord, n) in counts.into_iter().enumerate() {
                    if n > 0 {
                        buf.clear();
                        if matches!(col.ord_to_str(ord as u64, &mut buf), Ok(true)) {
                            m.insert(buf.clone(), n);
                        }
                    }
                }
            }
            out.push(m);
        }
        out
    }
}
