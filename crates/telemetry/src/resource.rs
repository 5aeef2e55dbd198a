//! The Resource describing this process: service.name, service.version, service.instance.id
//! (one fresh id per process), host.name, deployment.environment.name and
//! OTEL_RESOURCE_ATTRIBUTES.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::Resource;

use crate::config::TelemetryConfig;
use inferd_otel::semconv;

/// This process's `service.instance.id`: a random UUID, the same for every call.
pub fn service_instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

/// Builds the Resource from the configuration alone (the SDK's own environment detectors are
/// not used, so only the injected environment counts).
pub fn build_resource(config: &TelemetryConfig) -> Resource {
    let mut attributes = vec![
        KeyValue::new(semconv::SERVICE_VERSION, config.service_version.clone()),
        KeyValue::new(semconv::SERVICE_INSTANCE_ID, service_instance_id()),
        KeyValue::new(
            semconv::HOST_NAME,
            gethostname::gethostname().to_string_lossy().into_owned(),
        ),
    ];
    if let Some(env) = &config.deployment_environment {
        attributes.push(KeyValue::new(
            semconv::DEPLOYMENT_ENVIRONMENT_NAME,
            env.clone(),
        ));
    }
    // Operator-given attributes override the detected ones, except service.name, whose
    // precedence (OTEL_SERVICE_NAME first) the configuration already resolved.
    attributes.extend(
        config
            .resource_attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    attributes.push(KeyValue::new(
        semconv::SERVICE_NAME,
        config.service_name.clone(),
    ));
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attributes)
        .build()
}

#[cfg(test)]
mod tests {
    use opentelemetry::{Key, Value};

    use super::*;

    fn get(resource: &Resource, key: &'static str) -> Option<String> {
        resource
            .get(&Key::from_static_str(key))
            .map(|v: Value| v.to_string())
    }

    #[test]
    fn resource_has_service_instance_and_host() {
        let config = TelemetryConfig {
            service_name: "svc".into(),
            deployment_environment: Some("staging".into()),
            resource_attributes: vec![
                ("team".into(), "ml".into()),
                ("service.name".into(), "ignored".into()),
            ],
            ..TelemetryConfig::default()
        };
        let r = build_resource(&config);
        assert_eq!(get(&r, semconv::SERVICE_NAME).as_deref(), Some("svc"));
        assert_eq!(
            get(&r, semconv::SERVICE_INSTANCE_ID).as_deref(),
            Some(service_instance_id())
        );
        assert_eq!(
            get(&r, semconv::DEPLOYMENT_ENVIRONMENT_NAME).as_deref(),
            Some("staging")
        );
        assert_eq!(get(&r, "team").as_deref(), Some("ml"));
        assert!(get(&r, semconv::HOST_NAME).is_some_and(|h| !h.is_empty()));
        assert!(get(&r, semconv::SERVICE_VERSION).is_some());
        assert_eq!(service_instance_id().len(), 36);
    }
}
