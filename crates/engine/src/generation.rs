//! A generation's lifecycle, from a checked request to its events: find the model (loading a
//! cold local one, or routing to an upstream), tell the observers it starts, start the
//! backend inside the generation's span, and keep the model leased while the answer is read.
//! The server validates a request, calls [`start`] and renders what comes back.

use inferd_openai::Api;
use inferd_otel::ids::u128_hex;
use opentelemetry::context::FutureExt as _;
use opentelemetry::Context;

use crate::hooks::{ActiveGeneration, GenerationStart, HooksBus};
use crate::{
    EngineError, GenerationRequest, GenerationStream, Lease, LookupError, ModelRegistry, Route,
};

/// Provider name of generations whose model was not found (`gen_ai.provider.name`).
const PROVIDER: &str = "inferd";

/// What a caller asks for: a checked request for `model`, answered as `api`.
#[derive(Debug)]
pub struct Asked {
    pub api: Api,
    /// The model id or alias the client named.
    pub model: String,
    /// Where it goes ([`ModelRegistry::route`] of `model`).
    pub route: Route,
    pub request: GenerationRequest,
    /// Whether the client reads the answer as a stream.
    pub stream: bool,
    /// Whether the observers get a copy of the prompt (content capture).
    pub capture_prompt: bool,
}

/// A started generation.
#[derive(Debug)]
pub struct Generation {
    /// The response's id (`chatcmpl-…`, `cmpl-…`, `embd-…`): an upstream's passed-through
    /// answer is rewritten to carry it too.
    pub response_id: String,
    /// Whether the request is passed through: the upstream's answer goes on as it is (see
    /// [`crate::GenerationEvent::Raw`]).
    pub raw: bool,
    /// The backend's events.
    pub events: GenerationStream,
    /// The observers' handle: report tokens and the end to it.
    pub observed: ActiveGeneration,
    /// Keeps the model loaded until the answer is read.
    pub lease: Lease,
}

/// Why a generation did not start.
#[derive(Debug)]
pub enum StartError {
    /// No such model, or it cannot serve now.
    Lookup(LookupError),
    /// The backend refused the request (queue full, prompt too long, upstream error …).
    Engine(EngineError),
}

/// A generation that did not start: its observers are told the failure through `observed`
/// (by the caller, which words the error as its clients see it).
#[derive(Debug)]
pub struct Failed {
    pub observed: ActiveGeneration,
    pub error: StartError,
}

/// Starts `asked` on its model: acquires it through `registry` by its route, starts the observers of
/// `hooks` (the generation span is current while the backend enqueues, so its queue and
/// inference spans, made on the engine thread, become the generation's children) and the
/// backend.
pub async fn start(
    registry: &ModelRegistry,
    hooks: &HooksBus,
    asked: Asked,
) -> Result<Generation, Failed> {
    let Asked {
        api,
        model,
        route,
        mut request,
        stream,
        capture_prompt,
    } = asked;
    let mut response_id = String::with_capacity(api.id_prefix().len() + 32);
    response_id.push_str(api.id_prefix());
    response_id.push_str(u128_hex(fastrand::u128(..)).as_str());
    let raw = match request.pass_through.as_mut() {
        Some(pass) => {
            pass.response_id.clone_from(&response_id);
            true
        }
        None => false,
    };
    // A cold local model is loaded here (its model.load span under the request's span).
    let lookup = registry.acquire_route(route, &Context::current()).await;
    let (provider, server) = match &lookup {
        Ok(lease) => {
            let info = lease.backend.info();
            (info.provider, info.server)
        }
        Err(_) => (PROVIDER.into(), None),
    };
    let model_known = !matches!(lookup, Err(LookupError::NotFound { .. }));
    let mut observed = hooks.start(GenerationStart {
        generation_id: random_id(),
        api,
        model: model.as_str().into(),
        model_known,
        provider,
        server,
        params: request.params.clone(),
        stream,
        captured_prompt: capture_prompt.then(|| request.prompt.clone()),
    });
    if raw {
        observed.skip_output_capture();
    }
    let lease = match lookup {
        Ok(lease) => lease,
        Err(error) => {
            return Err(Failed {
                observed,
                error: StartError::Lookup(error),
            })
        }
    };
    let generate = lease.backend.generate(request);
    let generated = match observed.span().and_then(|span| span.context()) {
        Some(cx) => generate.with_context(cx.clone()).await,
        None => generate.await,
    };
    let events = match generated {
        Ok(events) => events,
        Err(error) => {
            return Err(Failed {
                observed,
                error: StartError::Engine(error),
            })
        }
    };
    if let Some(server) = events.served_by() {
        observed.served_by(server);
    }
    Ok(Generation {
        response_id,
        raw,
        events,
        observed,
        lease,
    })
}

/// 128 random bits as 32 hex digits, for generation ids. Not a secret, so a fast user-space
/// generator (seeded once per thread) instead of a system call per id.
fn random_id() -> String {
    u128_hex(fastrand::u128(..)).as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_32_hex_digits() {
        let id = random_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(id, random_id());
    }

    #[tokio::test]
    async fn an_unknown_model_fails_with_its_observers_told_and_no_lease() {
        let registry = ModelRegistry::new(Vec::new(), HooksBus::default());
        let asked = Asked {
            api: Api::Chat,
            model: "nope".into(),
            route: registry.route("nope"),
            request: GenerationRequest {
                prompt: crate::Prompt::Text("hi".into()),
                params: crate::SamplingParams::default(),
                stream: false,
                pass_through: None,
                priority: crate::Priority::Interactive,
            },
            stream: false,
            capture_prompt: false,
        };
        let Err(failed) = start(&registry, &HooksBus::default(), asked).await else {
            panic!("an unknown model cannot start");
        };
        assert!(matches!(
            failed.error,
            StartError::Lookup(LookupError::NotFound { ref model, .. }) if model == "nope"
        ));
    }
}
