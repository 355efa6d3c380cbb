//! How the `charla` commands prove who they are: a token given with `--token`, or one minted from
//! a key set: the one CHARLA_AUTH_JWKS names, else the development key set `charla up` keeps in
//! its data folder.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use charla_runtime::auth::Role;
use charla_runtime::auth::keys::KeySet;
use charla_runtime::auth::mint::{TokenRequest, mint};
use charla_runtime::workspace::WorkspaceId;
use tonic::metadata::MetadataValue;

/// The file in `charla up`'s data folder that holds its development key set.
pub const DEV_JWKS_FILE: &str = "jwks.json";

/// Where tokens are minted from.
#[derive(Debug, Clone, clap::Args)]
pub struct KeySource {
    /// JWKS file holding a private key (`oct`, or Ed25519 with `d`) to sign tokens with. Without
    /// it, the development key set in the data folder.
    #[arg(long = "auth-jwks", env = "CHARLA_AUTH_JWKS")]
    pub jwks: Option<PathBuf>,

    /// Issuer (`iss`) put in tokens, and required of callers' tokens.
    #[arg(long = "auth-issuer", env = "CHARLA_AUTH_ISSUER")]
    pub issuer: Option<String>,

    /// Audience (`aud`) put in tokens, and required of callers' tokens.
    #[arg(long = "auth-audience", env = "CHARLA_AUTH_AUDIENCE")]
    pub audience: Option<String>,

    /// `charla up`'s data folder, where its development key set lives.
    #[arg(long, env = "CHARLA_DATA_DIR", default_value = "charla-data")]
    pub data_dir: PathBuf,
}

impl KeySource {
    /// The key set file.
    pub fn jwks_path(&self) -> PathBuf {
        self.jwks
            .clone()
            .unwrap_or_else(|| self.data_dir.join(DEV_JWKS_FILE))
    }

    /// Whether this is `charla up`'s development key set.
    pub fn is_development(&self) -> bool {
        self.jwks.is_none()
    }

    /// A token for `role` in `workspace`, valid for `valid_for`.
    pub fn mint(
        &self,
        role: Role,
        workspace: Option<WorkspaceId>,
        subject: &str,
        valid_for: Duration,
    ) -> Result<String, String> {
        let path = self.jwks_path();
        let keys = KeySet::read(&path).map_err(|e| {
            let hint = if self.is_development() {
                " (start `charla up` once to make it, or set CHARLA_AUTH_JWKS)"
            } else {
                ""
            };
            format!("{e}{hint}")
        })?;
        let key = keys.signing_key().ok_or_else(|| {
            format!(
                "the key set {} holds no private key to sign with (an `oct` key, or an Ed25519 \
                 key with `d`)",
                path.display()
            )
        })?;
        let request = TokenRequest {
            role,
            workspace,
            subject: subject.to_owned(),
            valid_for,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        };
        mint(key, &request, SystemTime::now())
    }
}

/// The credentials of a command that calls charla.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientAuth {
    /// Bearer token to call with (a JWT); without it, an admin token is minted for the workspace.
    #[arg(long, env = "CHARLA_TOKEN")]
    pub token: Option<String>,

    #[command(flatten)]
    pub keys: KeySource,
}

impl ClientAuth {
    /// The `authorization` value to call `workspace` with as an admin.
    pub fn bearer(
        &self,
        workspace: uuid::Uuid,
    ) -> Result<MetadataValue<tonic::metadata::Ascii>, String> {
        let token = match &self.token {
            Some(token) => token.clone(),
            None => self.keys.mint(
                Role::Admin,
                Some(WorkspaceId::new(workspace)),
                "charla-cli",
                Duration::from_secs(3600),
            )?,
        };
        MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| "the token is not valid metadata".to_owned())
    }
}

/// `charla token`: what to mint.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The workspace the token is for (a UUID); service tokens may omit it.
    #[arg(long)]
    workspace: Option<uuid::Uuid>,

    /// What the bearer may do.
    #[arg(long, value_enum, default_value = "admin")]
    role: RoleArg,

    /// Hours the token is valid.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=24 * 366))]
    hours: u64,

    /// Who the token is for (`sub`), shown in logs.
    #[arg(long, default_value = "charla-token")]
    subject: String,

    #[command(flatten)]
    keys: KeySource,
}

/// A role, as `charla token` takes it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Agent,
    Admin,
    Service,
}

/// Runs `charla token`: prints a token on standard output.
pub fn run_token(args: TokenArgs) -> std::process::ExitCode {
    let role = match args.role {
        RoleArg::Agent => Role::Agent,
        RoleArg::Admin => Role::Admin,
        RoleArg::Service => Role::Service,
    };
    if role != Role::Service && args.workspace.is_none() {
        eprintln!("charla token: --workspace is required for agent and admin tokens");
        return std::process::ExitCode::FAILURE;
    }
    let minted = args.keys.mint(
        role,
        args.workspace.map(WorkspaceId::new),
        &args.subject,
        Duration::from_secs(args.hours * 3600),
    );
    match minted {
        Ok(token) => {
            println!("{token}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("charla token: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
