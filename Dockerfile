# The browser demo (client-demo/dist), built in a stage of its own with the dev dependencies (esbuild, qrcode).
FROM node:24-bookworm-slim AS demo
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci
COPY shared ./shared
COPY client-demo ./client-demo
RUN npm run build:client

# pinroom server image. TypeScript runs through tsx; no build step.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY server ./server
COPY shared ./shared
COPY --from=demo /build/client-demo/dist ./client-demo/dist
USER node
EXPOSE 3000
# node directly (not npm) so that SIGTERM reaches the server and it drains.
CMD ["node", "--import", "tsx", "server/main.ts"]
