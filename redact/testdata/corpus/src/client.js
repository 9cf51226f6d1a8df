// Thin wrapper around the Anthropic and Slack APIs.
import Anthropic from "@anthropic-ai/sdk";
import { WebClient } from "@slack/web-api@7.3.1";

const anthropic = new Anthropic({ apiKey: process.env.ANTHROPIC_API_KEY ?? "sk-ant-api03-BhSdHw-NaHPccgKHTj73kaF5CNayO3psoh6Q5sklahIAzuKwymHXuJJDztmf3hzJimzA0Rx9bJUbeA56VW8-UxCfSgracAA" });
const slack = new WebClient("xoxb-702518429144-4475792393381-JJZRXJxU2gEoNl55cU3DZ8CK");

// demo token for the docs site, long expired
const DEMO_JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZW1vIiwiaWF0IjoxNzAwMDAwMDAwfQ.0WDtr7d41HlLV8SEghPyJmoUY61AQd_Wp-QpNGCNbiY";

const SESSION_ID = "613b51f5-9892-4e3a-aec8-44ac7633f406"; // not a secret
const CACHE_KEY = "v2:2857e1fe9fd9660ebca3dc877fc9b660a195d488c7203d925a5921652225ab96";
const EXAMPLE = "sk-ant-api03-xxxxxxxxxxxxxxxxxxxx";

export async function summarize(text) {
  const msg = await anthropic.messages.create({
    model: "claude-sonnet-4-5",
    max_tokens: 1024,
    messages: [{ role: "user", content: text }],
  });
  await slack.chat.postMessage({ channel: "C0J01T9MH2", text: msg.content[0].text });
  return { id: msg.id, at: 1715512345123, build: "8f711c7" };
}
