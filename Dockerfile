# syntax=docker/dockerfile:1
# Multi-stage build: a static clickgate binary on a distroless base, running as a non-root
# user with its data on a volume.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/clickgate ./cmd/clickgate \
 && mkdir -p /out/data /out/plugins \
 && for d in plugins/*/; do \
      p=$(basename "$d"); [ -f "$d/main.go" ] && [ "$p" != example ] || continue; \
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o "/out/plugins/$p" "./$d" || exit 1; \
    done

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/clickgate /usr/local/bin/clickgate
# The built-in forwarders: name them in a plugins file as /usr/local/lib/clickgate/plugins/<name>.
COPY --from=build /out/plugins /usr/local/lib/clickgate/plugins
COPY --from=build --chown=nonroot:nonroot /out/data /data
COPY configs/demo-links.json /etc/clickgate/demo-links.json
ENV CLICKGATE_LISTEN=:8080 \
    CLICKGATE_ADMIN_LISTEN=0.0.0.0:8081 \
    CLICKGATE_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080 8081
USER nonroot:nonroot
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/usr/local/bin/clickgate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/clickgate"]
CMD ["serve"]
