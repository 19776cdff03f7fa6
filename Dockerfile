# syntax=docker/dockerfile:1
# One image for both parts: the webhook (node /app/dist/webhook/server/cli.js serve) and the node installer
# (node /app/dist/installer/cli.js run), which copies the plugin from /opt/asm-cni/asm-cni onto each node.
#   docker build -t ghcr.io/asm-cni/asm-cni:0.1.0 .
ARG GO_VERSION=1.26.8
ARG NODE_VERSION=20

# --- the CNI plugin: a static Go binary (no libc needed on the node) ---
FROM golang:${GO_VERSION}-bookworm AS plugin
WORKDIR /src/cni
COPY cni/go.mod cni/go.sum ./
RUN go mod download
COPY cni/ ./
ARG VERSION=0.1.0
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/asm-cni ./cmd/asm-cni \
 && /out/asm-cni version
# crictl for `asm-cni verify --node` and the node audit (they find pods' network namespaces through the CRI)
ARG CRICTL_VERSION=v1.34.0
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags "-s -w" sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION} \
 && /out/crictl --version

# --- the TypeScript, compiled ---
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src/ ./src/
RUN npm run build:ts

# --- production dependencies only ---
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime: Node, the built JS, production dependencies, the plugin at a fixed path; non-root by default ---
FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# iptables: the node audit reads pods' rules with the node's flavour (nft or legacy), as the plugin does on the node
RUN apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*
COPY --from=plugin /out/asm-cni /opt/asm-cni/asm-cni
COPY --from=plugin /out/crictl /opt/asm-cni/crictl
# the installer's default --plugin-binary (dist/cni/asm-cni of the package) finds the same file
RUN mkdir -p dist/cni && ln -s /opt/asm-cni/asm-cni dist/cni/asm-cni
# numeric, so that runAsNonRoot can verify it; the installer DaemonSet overrides it with runAsUser 0 (see manifests)
USER 10001:10001
EXPOSE 9443 9090 8080
CMD ["node", "/app/dist/webhook/server/cli.js", "serve"]
