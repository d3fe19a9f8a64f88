# syntax=docker/dockerfile:1

# Build a static binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/enricher ./cmd/enricher

# Run it as a non-root user on a distroless base (CA certificates, no shell).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/enricher /usr/local/bin/enricher
USER nonroot:nonroot
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/enricher"]
CMD ["run"]
