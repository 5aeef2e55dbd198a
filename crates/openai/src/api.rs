//! [`Api`]: which of the three OpenAI endpoints a request is for, and what each is called.

/// One of the OpenAI endpoints inferd serves, passes through and benchmarks: chat
/// completions, (legacy) text completions, embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /v1/chat/completions` (`messages`).
    Chat,
    /// `POST /v1/completions` (`prompt`).
    Completions,
    /// `POST /v1/embeddings` (`input`; never streamed).
    Embeddings,
}

impl Api {
    /// The endpoint's path on a server: `/v1/chat/completions`, …
    pub fn path(self) -> &'static str {
        match self {
            Api::Chat => "/v1/chat/completions",
            Api::Completions => "/v1/completions",
            Api::Embeddings => "/v1/embeddings",
        }
    }

    /// The endpoint's path under an OpenAI base URL (which ends in `/v1`): `/chat/completions`, …
    pub fn relative_path(self) -> &'static str {
        match self {
            Api::Chat => "/chat/completions",
            Api::Completions => "/completions",
            Api::Embeddings => "/embeddings",
        }
    }

    /// The GenAI operation (`gen_ai.operation.name`): `chat`, `text_completion`, `embeddings`.
    pub fn operation_name(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Completions => "text_completion",
            Api::Embeddings => "embeddings",
        }
    }

    /// The endpoint's name as a flag, a configuration file or a report spells it: `chat`,
    /// `completions`, `embeddings`.
    pub fn name(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Completions => "completions",
            Api::Embeddings => "embeddings",
        }
    }

    /// The start of a response id: `chatcmpl-`, `cmpl-` (OpenAI's), `embd-` (inferd's).
    pub fn id_prefix(self) -> &'static str {
        match self {
            Api::Chat => "chatcmpl-",
            Api::Completions => "cmpl-",
            Api::Embeddings => "embd-",
        }
    }

    /// The request field that holds the prompt: `messages`, `prompt`, `input`.
    pub fn prompt_param(self) -> &'static str {
        match self {
            Api::Chat => "messages",
            Api::Completions => "prompt",
            Api::Embeddings => "input",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_on_a_server_is_the_relative_path_under_v1() {
        for api in [Api::Chat, Api::Completions, Api::Embeddings] {
            assert_eq!(api.path(), format!("/v1{}", api.relative_path()));
        }
    }
}
