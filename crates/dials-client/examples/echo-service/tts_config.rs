//! The typed config of the demo fleet's `tts-worker` (examples/tars/tts-worker.schema.json),
//! written as a Rust struct: the schema the client derives from it has the same keys, types,
//! defaults, ranges, enums and `x-` annotations.
//!
//! `#[schemars(title = "…")]` gives a key its `title`, its doc comment the `description`;
//! `#[serde(default)]` with `impl Default` gives every key its default;
//! `#[schemars(range/length/regex/url)]` the bounds; `#[schemars(extend(...))]` the dials
//! annotations. `x-secret` comes with the [`SecretString`] type. `log_level` says
//! `x-global`: unless the service's own document sets it, it takes the value of `/log_level`
//! in the `global` document.

use dials_client::SecretString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Text-to-speech worker: voice and provider, playback pipeline, message merging and the phrase cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(title = "TARS tts-worker settings")]
pub struct TtsConfig {
    /// Stock Piper voice name, or the full path of your own .onnx voice file.
    #[schemars(title = "Piper voice")]
    #[schemars(length(min = 1, max = 200))]
    #[schemars(extend(
        "x-complexity" = "simple",
        "x-restart-required" = true,
        "x-env" = "PIPER_VOICE",
        "x-help" = "A name such as en_US-amy-medium picks a stock voice; a path such as /voices/TARS.onnx loads your own model.",
    ))]
    pub piper_voice: String,

    /// Engine that renders replies as audio.
    #[schemars(title = "Speech provider")]
    #[schemars(extend(
        "x-complexity" = "simple",
        "x-restart-required" = true,
        "x-env" = "TTS_PROVIDER",
        "x-help" = "piper synthesizes locally, offline and free; elevenlabs uses the hosted ElevenLabs service and needs an API key plus a voice ID.",
    ))]
    pub tts_provider: TtsProvider,

    /// Start playing audio while it is still being synthesized.
    #[schemars(title = "Streaming playback")]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_STREAMING",
        "x-help" = "Shortens the wait before speech but may add audible glitches, so it ships switched off.",
    ))]
    pub tts_streaming: bool,

    /// Synthesize and play a reply one sentence at a time.
    #[schemars(title = "Sentence pipeline")]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_PIPELINE",
        "x-help" = "The first sentence plays while later ones are still rendering, so speech begins earlier.",
    ))]
    pub tts_pipeline: bool,

    /// Play audio in-process with simpleaudio rather than paplay or aplay.
    #[schemars(title = "Use simpleaudio")]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_SIMPLEAUDIO",
        "x-help" = "Can help on hosts where the external players misbehave; the simpleaudio package is not in the image by default.",
    ))]
    pub tts_simpleaudio: bool,

    /// Number of sentences that may be synthesized at once (1 to 10).
    #[schemars(title = "Synthesis workers")]
    #[schemars(range(min = 1, max = 10))]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_CONCURRENCY",
        "x-help" = "Matters only with the sentence pipeline on. Extra workers finish long replies sooner at the cost of more processor load.",
    ))]
    pub tts_concurrency: u8,

    /// Collect messages sharing an utterance ID before speaking them.
    #[schemars(title = "Group by utterance")]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_AGGREGATE_BY_UTT",
        "x-help" = "Keeps the sentences of one reply together and trims the pauses between them.",
    ))]
    pub tts_aggregate_by_utt: bool,

    /// Seconds to wait for further parts of the same utterance (0.1 to 10).
    #[schemars(title = "Grouping timeout")]
    #[schemars(range(min = 0.1, max = 10.0))]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_AGGREGATE_TIMEOUT_SEC",
        "x-help" = "A longer wait gathers more text per synthesis call but delays the start of speech.",
    ))]
    pub tts_aggregate_timeout_sec: f64,

    /// Join back-to-back messages belonging to one utterance into a single text.
    #[schemars(title = "Merge consecutive messages")]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_AGGREGATE",
        "x-help" = "The joined text is spoken as one clip, which removes the gaps between sentences.",
    ))]
    pub tts_aggregate: bool,

    /// Milliseconds to hold a message in case more of it arrives.
    #[schemars(title = "Merge debounce")]
    #[schemars(range(min = 0, max = 5000))]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_AGGREGATE_DEBOUNCE_MS",
        "x-help" = "Gives follow-on text a moment to join the same clip. Range 0 to 5000 ms.",
    ))]
    pub tts_aggregate_debounce_ms: u32,

    /// Render merged text with a single synthesis call.
    #[schemars(title = "One clip for merged text")]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_AGGREGATE_SINGLE_WAV",
        "x-help" = "Yields one continuous WAV file instead of several, so nothing is heard between sentences.",
    ))]
    pub tts_aggregate_single_wav: bool,

    /// Keep pre-rendered audio for wake replies and other frequent phrases.
    #[schemars(title = "Phrase cache")]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_WAKE_CACHE_ENABLE",
        "x-help" = "Cached clips play instantly and spare repeat calls to a paid provider.",
    ))]
    pub tts_wake_cache_enable: bool,

    /// Folder that holds the cached audio clips.
    #[schemars(title = "Phrase cache directory")]
    #[schemars(length(min = 1, max = 500))]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-restart-required" = true,
        "x-env" = "TTS_WAKE_CACHE_DIR",
        "x-help" = "Either relative to the worker's working directory or absolute.",
    ))]
    pub tts_wake_cache_dir: String,

    /// Most audio clips the phrase cache keeps (0 to 1000).
    #[schemars(title = "Phrase cache size")]
    #[schemars(range(min = 0, max = 1000))]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "TTS_WAKE_CACHE_MAX",
        "x-help" = "When full, the least recently used clip goes first; a bigger cache takes more disk.",
    ))]
    pub tts_wake_cache_max: u32,

    /// Playback volume in percent (0 to 200).
    #[schemars(title = "Volume")]
    #[schemars(range(min = 0, max = 200))]
    #[schemars(extend(
        "x-complexity" = "simple",
        "x-env" = "VOLUME_PERCENT",
        "x-help" = "100 plays audio unchanged; above 100 amplifies it and may distort, below 100 makes it quieter.",
    ))]
    pub volume_percent: u32,

    /// Root URL for requests to ElevenLabs.
    #[schemars(title = "ElevenLabs API base URL")]
    #[schemars(length(min = 1, max = 500), regex(pattern = r"^https?://"), url)]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "ELEVEN_API_BASE",
        "x-help" = "Change it only to go through a proxy or a compatible service. The scheme has to be http or https.",
    ))]
    pub eleven_api_base: String,

    /// Credential for your ElevenLabs account.
    #[schemars(title = "ElevenLabs API key")]
    #[schemars(length(max = 500))]
    #[schemars(extend(
        "x-complexity" = "simple",
        "x-secret" = true,
        "x-env" = "ELEVEN_API_KEY",
        "x-help" = "Needed only with the elevenlabs provider. Stored encrypted and masked in every listing.",
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eleven_api_key: Option<SecretString>,

    /// Which ElevenLabs voice speaks the replies, given by its ID.
    #[schemars(title = "ElevenLabs voice ID")]
    #[schemars(length(max = 200))]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "ELEVEN_VOICE_ID",
        "x-help" = "Copy it from your ElevenLabs voice library; the elevenlabs provider cannot speak without it.",
    ))]
    pub eleven_voice_id: String,

    /// ElevenLabs synthesis model to request.
    #[schemars(title = "ElevenLabs model")]
    #[schemars(length(min = 1, max = 100))]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "ELEVEN_MODEL_ID",
        "x-help" = "eleven_multilingual_v2 handles many languages; eleven_monolingual_v1 (English only) and eleven_turbo_v2 are alternatives.",
    ))]
    pub eleven_model_id: String,

    /// How hard ElevenLabs trades quality for speed, from 0 (not at all) to 3 (most).
    #[schemars(title = "ElevenLabs latency optimization")]
    #[schemars(range(min = 0, max = 3))]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "ELEVEN_OPTIMIZE_STREAMING",
        "x-help" = "Higher levels get audio out sooner but can cost some quality.",
    ))]
    pub eleven_optimize_streaming: u8,

    /// Lowest severity the worker writes to its log.
    #[schemars(title = "Log level")]
    #[schemars(extend(
        "x-complexity" = "advanced",
        "x-env" = "LOG_LEVEL",
        "x-global" = "/log_level",
        "x-help" = "Taken from the fleet's global log level unless set here, so one change in global reaches every worker; set it here to make this worker chattier or quieter than the rest.",
    ))]
    pub log_level: LogLevel,
}

/// Engine that renders replies as audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum TtsProvider {
    // Plain comments, not doc comments: documented variants become a `oneOf` of constants.
    // Piper, locally, offline and free.
    Piper,
    // The hosted ElevenLabs service.
    Elevenlabs,
}

/// Lowest severity written to the log: the values of the demo fleet's global `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schemars(inline)]
pub enum LogLevel {
    // Plain comments, not doc comments, as for `TtsProvider`.
    // Everything, for finding a fault.
    Debug,
    // Everyday running.
    Info,
    // Only what may need attention.
    Warning,
    // Only failures.
    Error,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            piper_voice: "en_US-lessac-medium".into(),
            tts_provider: TtsProvider::Piper,
            tts_streaming: false,
            tts_pipeline: true,
            tts_simpleaudio: false,
            tts_concurrency: 1,
            tts_aggregate_by_utt: true,
            tts_aggregate_timeout_sec: 2.0,
            tts_aggregate: true,
            tts_aggregate_debounce_ms: 150,
            tts_aggregate_single_wav: true,
            tts_wake_cache_enable: true,
            tts_wake_cache_dir: "data/tts-cache".into(),
            tts_wake_cache_max: 16,
            volume_percent: 100,
            eleven_api_base: "https://api.elevenlabs.io/v1".into(),
            eleven_api_key: None,
            eleven_voice_id: "".into(),
            eleven_model_id: "eleven_multilingual_v2".into(),
            eleven_optimize_streaming: 0,
            log_level: LogLevel::Info,
        }
    }
}
