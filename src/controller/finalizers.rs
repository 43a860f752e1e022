//! Adding and removing a finalizer, the same way for every kind Landlord reconciles.
//!
//! Both write the whole finalizer list guarded by the `resourceVersion` it was read at, so
//! a concurrent change (another controller's finalizer) makes the write a 409 and a retry,
//! never a lost finalizer. Removal reads the object fresh first: the reconcile that
//! removes it has usually just written its status, so the cached version is stale.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Adds `finalizer` to `object` unless it has it.
pub async fn ensure<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if object.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(finalizer.to_owned());
    replace(api, object, &finalizers).await
}

/// Removes `finalizer` from the object `name`, read fresh; an object already gone, or
/// without the finalizer, is fine.
pub async fn remove<K>(api: &Api<K>, name: &str, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(fresh) = api.get_opt(name).await? else {
        return Ok(());
    };
    match without(&fresh, finalizer) {
        Some(kept) => replace(api, &fresh, &kept).await,
        None => Ok(()),
    }
}

/// Removes `finalizer` from `object` as it was read (from a cache): one write when it has
/// not changed since, else a fresh read and [`remove`].
pub async fn remove_from<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(kept) = without(object, finalizer) else {
        return Ok(());
    };
    match replace(api, object, &kept).await {
        Err(kube::Error::Api(status)) if status.code == 409 => {
            remove(api, &object.name_any(), finalizer).await
        }
        other => other,
    }
}

/// The finalizers of `object` but `finalizer`, or `None` when it does not have it.
fn without<K: Resource>(object: &K, finalizer: &str) -> Option<Vec<String>> {
    let finalizers = object.finalizers();
    finalizers.iter().any(|f| f == finalizer).then(|| {
        finalizers
            .iter()
            .filter(|f| *f != finalizer)
            .cloned()
            .collect()
    })
}

/// Replaces the finalizer list, guarded by the resourceVersion `object` was read at.
async fn replace<K>(api: &Api<K>, object: &K, finalizers: &[String]) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"resourceVersion": object.resource_version(), "finalizers": finalizers}});
    match api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
