//! The HTTP routes of a server, read at start-up from the `google.api.http` option of each unary
//! method of the services it serves: nothing here names a route. Streaming methods stay gRPC only.

use http::Method;
use prost_reflect::{DescriptorPool, MethodDescriptor, Value};

use charla_proto::google::api::{HttpRule, http_rule::Pattern};

use super::template::{PathTemplate, TemplateError};

/// One HTTP binding of a method.
#[derive(Debug, Clone)]
pub struct Route {
    pub http_method: Method,
    pub template: PathTemplate,
    /// The rule's `body`: "" (none), "*" (the whole request) or a top-level field.
    pub body: String,
    /// The rule's `response_body`: "" (the whole response) or a top-level field.
    pub response_body: String,
    pub method: MethodDescriptor,
    /// The gRPC path the call goes to, `/package.Service/Method`.
    pub grpc_path: String,
}

/// Why the routes can't be built.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{method}: {source}")]
    Template {
        method: String,
        source: TemplateError,
    },
    #[error("{method}: {reason}")]
    Rule { method: String, reason: String },
}

/// Every route of `services` (full names), in the order to try them: routes with a custom verb
/// first (see [`PathTemplate::has_verb`]).
pub fn routes_of(pool: &DescriptorPool, services: &[&str]) -> Result<Vec<Route>, RouteError> {
    let Some(extension) = pool.get_extension_by_name("google.api.http") else {
        return Ok(Vec::new());
    };
    let mut routes = Vec::new();
    for service in services
        .iter()
        .filter_map(|name| pool.get_service_by_name(name))
    {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&extension) {
                continue;
            }
            let rule_error = |reason: String| RouteError::Rule {
                method: method.full_name().to_owned(),
                reason,
            };
            if method.is_client_streaming() || method.is_server_streaming() {
                return Err(rule_error("streaming methods are gRPC only".into()));
            }
            let Value::Message(rule) = options.get_extension(&extension).into_owned() else {
                return Err(rule_error("google.api.http is not a message".into()));
            };
            let rule: HttpRule = rule
                .transcode_to()
                .map_err(|error| rule_error(error.to_string()))?;
            let mut bindings = vec![rule.clone()];
            bindings.extend(rule.additional_bindings.iter().cloned());
            for binding in bindings {
                routes.push(route(&method, binding)?);
            }
        }
    }
    routes.sort_by_key(|route| !route.template.has_verb());
    Ok(routes)
}

fn route(method: &MethodDescriptor, rule: HttpRule) -> Result<Route, RouteError> {
    let rule_error = |reason: String| RouteError::Rule {
        method: method.full_name().to_owned(),
        reason,
    };
    let (http_method, path) = match rule.pattern {
        Some(Pattern::Get(path)) => (Method::GET, path),
        Some(Pattern::Put(path)) => (Method::PUT, path),
        Some(Pattern::Post(path)) => (Method::POST, path),
        Some(Pattern::Delete(path)) => (Method::DELETE, path),
        Some(Pattern::Patch(path)) => (Method::PATCH, path),
        Some(Pattern::Custom(custom)) => (
            Method::from_bytes(custom.kind.as_bytes())
                .map_err(|_| rule_error(format!("bad HTTP method {:?}", custom.kind)))?,
            custom.path,
        ),
        None => return Err(rule_error("no HTTP pattern".into())),
    };
    let template = PathTemplate::parse(&path).map_err(|source| RouteError::Template {
        method: method.full_name().to_owned(),
        source,
    })?;
    let input = method.input();
    for field_path in template.field_paths() {
        if super::fields::resolve(&input, field_path).is_none() {
            return Err(rule_error(format!(
                "no field `{field_path}` in the request"
            )));
        }
    }
    for (name, what) in [(&rule.body, "body"), (&rule.response_body, "response_body")] {
        let message = if what == "body" {
            &input
        } else {
            &method.output()
        };
        if !name.is_empty() && name != "*" && message.get_field_by_name(name).is_none() {
            return Err(rule_error(format!("no field `{name}` for the {what}")));
        }
    }
    Ok(Route {
        http_method,
        template,
        body: rule.body,
        response_body: rule.response_body,
        grpc_path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
        method: method.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_annotated_method_of_a_service_gets_its_route() {
        let pool = super::super::descriptor_pool().unwrap();
        let routes = routes_of(&pool, &["charla.metrics.v1.MetricsService"]).unwrap();
        let mut found: Vec<(String, String)> = routes
            .iter()
            .map(|r| (r.http_method.to_string(), r.template.openapi_path()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                ("GET", "/v1/metrics/conversations"),
                ("GET", "/v1/metrics/dashboard"),
                ("GET", "/v1/metrics/leaderboard"),
                ("GET", "/v1/metrics/settings"),
                ("PATCH", "/v1/metrics/settings"),
                ("POST", "/v1/metrics:rebuild"),
            ]
            .map(|(m, p)| (m.to_owned(), p.to_owned()))
        );
        assert!(routes.iter().all(|r| {
            r.grpc_path
                .starts_with("/charla.metrics.v1.MetricsService/")
        }));
    }
}
