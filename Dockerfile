# pinroom server image. TypeScript runs through tsx; no build step.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY server ./server
COPY shared ./shared
COPY client-demo ./client-demo
USER node
EXPOSE 3000
# node directly (not npm) so that SIGTERM reaches the server and it drains.
CMD ["node", "--import", "tsx", "server/main.ts"]
