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
# Only src/ is compiled into the image; tests are dropped from the output.
RUN node node_modules/typescript/bin/tsc -p tsconfig.json \
 && find dist -name '*.test.js' -delete -o -name '*.test.js.map' -delete

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
COPY --from=build /src/dist/src ./dist/src
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 8080 8090
# The distroless entrypoint is node itself.
CMD ["--enable-source-maps", "dist/src/main.js"]
