//! What every leaf plan of ours (`EntityScan`, `SeriesScan`, `SearchScan`)
//! answers the same way: no children, one partition, a fetch that only
//! ever tightens.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::physical_plan::ExecutionPlan;

/// `with_new_children` of a leaf: the plan itself, or an internal error
/// when DataFusion hands it children.
pub(super) fn without_children(
    plan: Arc<dyn ExecutionPlan>,
    children: &[Arc<dyn ExecutionPlan>],
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if children.is_empty() {
        Ok(plan)
    } else {
        Err(DataFusionError::Internal(format!(
            "{} has no children",
            plan.name()
        )))
    }
}

/// A leaf reads everything in partition 0; any other is an internal error.
pub(super) fn single_partition(plan: &str, partition: usize) -> DfResult<()> {
    if partition == 0 {
        Ok(())
    } else {
        Err(DataFusionError::Internal(format!(
            "{plan} has one partition, asked for {partition}"
        )))
    }
}

/// The tighter of a plan's own limit and a new one.
pub(super) fn tighter_fetch(own: Option<usize>, limit: Option<usize>) -> Option<usize> {
    match (own, limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_only_tightens() {
        assert_eq!(tighter_fetch(Some(5), Some(9)), Some(5));
        assert_eq!(tighter_fetch(Some(9), Some(5)), Some(5));
        assert_eq!(tighter_fetch(None, Some(5)), Some(5));
        assert_eq!(tighter_fetch(Some(5), None), Some(5));
        assert_eq!(tighter_fetch(None, None), None);
    }

    #[test]
    fn a_leaf_has_one_partition() {
        assert!(single_partition("X", 0).is_ok());
        let e = single_partition("X", 1).unwrap_err().to_string();
        assert!(e.contains("X has one partition, asked for 1"), "{e}");
    }
}
