//! Frameworks and build tools of a project, from its manifests and marker files. What is
//! recognised is data (the tables below); the code only parses the manifests' dependency
//! lists.

use std::collections::BTreeSet;
use std::path::Path;

use super::walk::Walked;

/// Manifests (listed in the project's description) and the build tool each names.
const MANIFESTS: &[(&[&str], Option<&str>)] = &[
    (&["Cargo.toml"], Some("Cargo")),
    (&["package.json"], Some("npm")),
    (&["pyproject.toml"], None),
    (&["requirements.txt", "setup.py", "setup.cfg", "Pipfile"], Some("pip")),
    (&["go.mod"], Some("Go modules")),
    (&["pom.xml"], Some("Maven")),
    (&["build.gradle", "build.gradle.kts"], Some("Gradle")),
    (&["Gemfile"], Some("Bundler")),
    (&["composer.json"], Some("Composer")),
];

/// Other files that name a build tool.
const TOOL_FILES: &[(&[&str], &str)] = &[
    (&["CMakeLists.txt"], "CMake"),
    (&["Makefile", "GNUmakefile"], "Make"),
    (&["Justfile", "justfile"], "just"),
    (&["Dockerfile", "Containerfile"], "Docker"),
    (
        &["docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml"],
        "Docker Compose",
    ),
];

/// Paths under the project's root that name a tool or CI (a folder ends in `/`).
const ROOT_MARKERS: &[(&str, &str)] = &[
    (".github/workflows/", "GitHub Actions"),
    (".gitlab-ci.yml", "GitLab CI"),
    ("yarn.lock", "Yarn"),
    ("pnpm-lock.yaml", "pnpm"),
    ("uv.lock", "uv"),
];

/// Text in a manifest that names a framework: (manifests, text, framework).
const MENTIONS: &[(&[&str], &str, &str)] = &[
    (JVM, "spring-boot", "Spring"),
    (JVM, "org.springframework", "Spring"),
    (JVM, "com.android", "Android"),
    (&["Gemfile"], "'rails'", "Rails"),
    (&["Gemfile"], "\"rails\"", "Rails"),
    (&["composer.json"], "laravel/framework", "Laravel"),
    (&["composer.json"], "symfony/", "Symfony"),
    (&["go.mod"], "github.com/gin-gonic/gin", "Gin"),
    (&["go.mod"], "github.com/labstack/echo", "Echo"),
    (&["go.mod"], "github.com/gofiber/fiber", "Fiber"),
    (&["go.mod"], "github.com/spf13/cobra", "Cobra"),
    (&["go.mod"], "gorm.io/gorm", "GORM"),
    (&["go.mod"], "google.golang.org/grpc", "gRPC"),
];
const JVM: &[&str] = &["pom.xml", "build.gradle", "build.gradle.kts"];

/// Python build backends (`build-system.requires` of a `pyproject.toml`).
const PYTHON_BUILD_BACKENDS: &[(&str, &str)] = &[
    ("hatchling", "Hatch"),
    ("setuptools", "setuptools"),
    ("maturin", "maturin"),
    ("flit_core", "Flit"),
    ("flit-core", "Flit"),
];

const RUST_CRATES: &[(&str, &str)] = &[
    ("tokio", "Tokio"),
    ("async-std", "async-std"),
    ("actix", "Actix"),
    ("actix-web", "Actix Web"),
    ("axum", "axum"),
    ("rocket", "Rocket"),
    ("warp", "warp"),
    ("hyper", "hyper"),
    ("tonic", "tonic (gRPC)"),
    ("reqwest", "reqwest"),
    ("serde", "serde"),
    ("clap", "clap"),
    ("diesel", "Diesel"),
    ("sqlx", "SQLx"),
    ("sea-orm", "SeaORM"),
    ("sled", "sled"),
    ("tantivy", "tantivy"),
    ("fastembed", "fastembed"),
    ("bevy", "Bevy"),
    ("tauri", "Tauri"),
    ("leptos", "Leptos"),
    ("yew", "Yew"),
    ("dioxus", "Dioxus"),
    ("tracing", "tracing"),
    ("opentelemetry", "OpenTelemetry"),
    ("prometheus", "Prometheus"),
    ("criterion", "criterion"),
    ("proptest", "proptest"),
    ("wasm-bindgen", "wasm-bindgen"),
];

const JS_PACKAGES: &[(&str, &str)] = &[
    ("react", "React"),
    ("next", "Next.js"),
    ("vue", "Vue"),
    ("nuxt", "Nuxt"),
    ("svelte", "Svelte"),
    ("@sveltejs/kit", "SvelteKit"),
    ("@angular/core", "Angular"),
    ("solid-js", "Solid"),
    ("express", "Express"),
    ("fastify", "Fastify"),
    ("koa", "Koa"),
    ("@nestjs/core", "NestJS"),
    ("electron", "Electron"),
    ("typescript", "TypeScript"),
    ("jest", "Jest"),
    ("vitest", "Vitest"),
    ("mocha", "Mocha"),
    ("webpack", "webpack"),
    ("vite", "Vite"),
    ("tailwindcss", "Tailwind CSS"),
    ("prisma", "Prisma"),
    ("eslint", "ESLint"),
];

const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("django", "Django"),
    ("flask", "Flask"),
    ("fastapi", "FastAPI"),
    ("starlette", "Starlette"),
    ("pytest", "pytest"),
    ("numpy", "NumPy"),
    ("pandas", "pandas"),
    ("torch", "PyTorch"),
    ("tensorflow", "TensorFlow"),
    ("sqlalchemy", "SQLAlchemy"),
    ("pydantic", "Pydantic"),
    ("celery", "Celery"),
    ("scikit-learn", "scikit-learn"),
    ("click", "Click"),
    ("typer", "Typer"),
];

/// What [`detect`] found.
#[derive(Debug, Default)]
pub(crate) struct Detected {
    /// Frameworks and notable libraries.
    pub(crate) frameworks: Vec<String>,
    /// Build tools and CI.
    pub(crate) build_tools: Vec<String>,
    /// Manifests read (relative paths).
    pub(crate) manifests: Vec<String>,
}

/// Frameworks, build tools and the manifests they came from.
pub(crate) fn detect(root: &Path, files: &[Walked]) -> Detected {
    let mut frameworks: BTreeSet<String> = BTreeSet::new();
    let mut tools: BTreeSet<String> = BTreeSet::new();
    let mut manifests: Vec<String> = Vec::new();
    let names = |deps: &[String], table: &[(&str, &str)], out: &mut BTreeSet<String>| {
        for (dep, label) in table {
            if deps.iter().any(|d| d == dep) {
                out.insert(label.to_string());
            }
        }
    };
    for f in files {
        let file = f.rel.rsplit('/').next().unwrap_or(&f.rel);
        let read = || std::fs::read_to_string(&f.abs).ok();
        if let Some((_, tool)) = MANIFESTS.iter().find(|(n, _)| n.contains(&file)) {
            manifests.push(f.rel.clone());
            tools.extend(tool.map(String::from));
        }
        if let Some((_, tool)) = TOOL_FILES.iter().find(|(n, _)| n.contains(&file)) {
            tools.insert(tool.to_string());
        }
        let mut mentions = MENTIONS.iter().filter(|(n, _, _)| n.contains(&file)).peekable();
        if mentions.peek().is_some() {
            let text = read().unwrap_or_default();
            for (_, needle, framework) in mentions {
                if text.contains(needle) {
                    frameworks.insert(framework.to_string());
                }
            }
        }
        match file {
            "Cargo.toml" => {
                if let Some(text) = read()
                    && let Ok(doc) = text.parse::<toml::Table>()
                {
                    if doc.contains_key("workspace") {
                        tools.insert("Cargo workspace".into());
                    }
                    let mut deps = Vec::new();
                    toml_keys(
                        &doc,
                        &["dependencies", "dev-dependencies", "build-dependencies"],
                        &mut deps,
                    );
                    if let Some(ws) = doc.get("workspace").and_then(|w| w.as_table()) {
                        toml_keys(ws, &["dependencies"], &mut deps);
                    }
                    names(&deps, RUST_CRATES, &mut frameworks);
                }
            }
            "package.json" => {
                if let Some(text) = read()
                    && let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text)
                {
                    let mut deps = Vec::new();
                    for key in ["dependencies", "devDependencies", "peerDependencies"] {
                        if let Some(m) = doc.get(key).and_then(|d| d.as_object()) {
                            deps.extend(m.keys().cloned());
                        }
                    }
                    names(&deps, JS_PACKAGES, &mut frameworks);
                }
            }
            "pyproject.toml" => {
                let mut deps = Vec::new();
                if let Some(text) = read()
                    && let Ok(doc) = text.parse::<toml::Table>()
                {
                    if let Some(list) = doc
                        .get("project")
                        .and_then(|p| p.get("dependencies"))
                        .and_then(|d| d.as_array())
                    {
                        deps.extend(
                            list.iter().filter_map(|v| v.as_str()).map(python_requirement_name),
                        );
                    }
                    if let Some(poetry) = doc.get("tool").and_then(|t| t.get("poetry")) {
                        tools.insert("Poetry".into());
                        if let Some(t) = poetry.get("dependencies").and_then(|d| d.as_table()) {
                            deps.extend(t.keys().map(|k| k.to_ascii_lowercase()));
                        }
                    }
                    if let Some(req) = doc
                        .get("build-system")
                        .and_then(|b| b.get("requires"))
                        .and_then(|r| r.as_array())
                    {
                        for r in req.iter().filter_map(|v| v.as_str()).map(python_requirement_name)
                        {
                            if let Some((_, tool)) =
                                PYTHON_BUILD_BACKENDS.iter().find(|(b, _)| *b == r)
                            {
                                tools.insert(tool.to_string());
                            }
                        }
                    }
                }
                names(&deps, PYTHON_PACKAGES, &mut frameworks);
            }
            "requirements.txt" | "setup.py" | "setup.cfg" | "Pipfile" => {
                let text = read().unwrap_or_default();
                let deps: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(python_requirement_name)
                    .collect();
                names(&deps, PYTHON_PACKAGES, &mut frameworks);
            }
            _ => {}
        }
    }
    for (marker, tool) in ROOT_MARKERS {
        let found = match marker.strip_suffix('/') {
            Some(dir) => root.join(dir).is_dir(),
            None => root.join(marker).is_file(),
        };
        if found {
            tools.insert(tool.to_string());
        }
    }
    Detected {
        frameworks: frameworks.into_iter().collect(),
        build_tools: tools.into_iter().collect(),
        manifests,
    }
}

fn toml_keys(table: &toml::Table, sections: &[&str], out: &mut Vec<String>) {
    for s in sections {
        if let Some(t) = table.get(*s).and_then(|v| v.as_table()) {
            out.extend(t.keys().cloned());
        }
    }
}

/// `Django>=4.2 ; python_version…` → `django`.
fn python_requirement_name(spec: &str) -> String {
    spec.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_requirement_names() {
        assert_eq!(python_requirement_name("Django>=4.2 ; python_version>'3'"), "django");
        assert_eq!(python_requirement_name("scikit_learn==1.0"), "scikit-learn");
    }
}
