# One image for the registry and the nodes (docker-compose.yml chooses the command).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY node ./node
COPY registry ./registry
RUN pip install --no-cache-dir . && mkdir -p /data
VOLUME /data
EXPOSE 8600 8700
CMD ["ledger-node", "--help"]
