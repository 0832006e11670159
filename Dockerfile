# syntax=docker/dockerfile:1
# remediator controller image: compiled in a Node 24 build stage, run on distroless
# Node 24 as the nonroot user (65532) with production dependencies only. No shell, no
# package manager, no compiler in the final image.
#
#   docker build -t ghcr.io/remediator-dev/remediator:0.1.0 .
#
# `make docker-build` builds it where a Docker engine runs, and lints this file where
# none does (hack/image/lint-dockerfile.ts).

ARG NODE_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# ---- build: compile TypeScript ------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: the `node` devDependency would download a second Node binary.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY hack/bundle-controller.ts ./hack/
# src/ is compiled, then bundled into one tree-shaken file (hack/bundle-controller.ts):
# half the resident memory of loading node_modules module by module.
RUN node node_modules/typescript/bin/tsc -p tsconfig.json \
 && node dist/hack/bundle-controller.js

# ---- deps: production dependencies only ---------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime ------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="remediator" \
      org.opencontainers.image.description="Kubernetes operator that turns alerts into approved, audited EC2 remediation (SSM, SNS)" \
      org.opencontainers.image.source="https://github.com/remediator-dev/remediator" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/package.json ./package.json
COPY --from=build /src/dist/controller ./dist/controller
# V8 sized for a controller (docs/bench/heap-profile-2026-11-30.md): a 1 MB young
# generation instead of up to 16 MB per semi-space, and an old generation capped below the
# chart's 512Mi limit, so V8 collects before the kernel kills. In the environment, so the
# chart can size it with the limit (controller.nodeOptions).
ENV NODE_OPTIONS="--max-semi-space-size=1 --max-old-space-size=384"
# glibc malloc: two arenas instead of one per thread, and free memory at the top of the
# heap given back above 128 KiB (about 18 MB less RSS after a 1,000-request burst). The
# chart sets the same from controller.malloc.
ENV MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=131072
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 8080 8090
# --optimize-for-size (not allowed in NODE_OPTIONS) lets V8 give the heap back after a
# peak such as the first list of 10,000 requests: 170 MB RSS instead of 272 measured. In
# the entrypoint, so container args (the chart's extraArgs) are the controller's flags.
# No --enable-source-maps: with one bundle it decodes the whole map at the first stack
# trace and keeps it; the bundle keeps function and class names, and
# NODE_OPTIONS=--enable-source-maps turns maps on to debug.
ENTRYPOINT ["/nodejs/bin/node", "--optimize-for-size", "dist/controller/main.js"]
