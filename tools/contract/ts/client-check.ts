// A frontend's first lines against Herald, type-checked with `tsc --strict` by
// tests/contract/test_generated_clients.py: types come from openapi-typescript
// (herald-api.d.ts, generated from openapi/openapi.json), calls from openapi-fetch.
import createClient from "openapi-fetch";
import type { components, paths } from "./herald-api";

type Problem = components["schemas"]["Problem"];
type Contact = components["schemas"]["ContactOut"];
type Channel = components["schemas"]["Channel"];

const herald = createClient<paths>({
  baseUrl: "http://localhost:8000",
  headers: { Authorization: "Bearer hk_test" },
});

function explain(problem: Problem): string {
  const fields = (problem.errors ?? []).map((error) => `${error.pointer}: ${error.message}`);
  return `${problem.status} ${problem.title} (${problem.request_id ?? "?"}) ${fields.join("; ")}`;
}

export async function firstContacts(): Promise<Contact[]> {
  const { data, error, response } = await herald.GET("/v1/contacts", {
    params: { query: { limit: 50 } },
  });
  if (error) throw new Error(explain(error));
  const next: string | null | undefined = data.next_cursor;
  console.log(response.headers.get("RateLimit"), next);
  return data.data;
}

export async function addContact(email: string): Promise<string> {
  const { data, error, response } = await herald.POST("/v1/contacts", {
    params: { header: { "Idempotency-Key": `add-${email}` } },
    body: { email, attributes: { plan: "pro" } },
  });
  if (error) {
    // 422 lists each invalid field with a JSON pointer; 409 is an in-flight retry.
    if (error.status === 422) return explain(error);
    throw new Error(explain(error));
  }
  console.log(response.headers.get("Location"));
  return data.id;
}

export async function campaignChannels(campaignId: string): Promise<Channel[]> {
  const { data, error } = await herald.GET("/v1/campaigns/{campaign_id}", {
    params: { path: { campaign_id: campaignId } },
  });
  if (error) throw new Error(explain(error));
  const budget = data.budget;
  console.log(data.status, budget?.amount, budget?.currency);
  return data.channels;
}
