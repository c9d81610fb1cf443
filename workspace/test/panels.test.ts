import { describe, expect, it } from "vitest";
import { uniqueIdentifiers } from "../src/panels";

describe("uniqueIdentifiers", () => {
  it("lists an identifier once after a merge, verified when either side is", () => {
    const got = uniqueIdentifiers([
      { type: "email", value: "ann@example.org", verified: false },
      { type: "api:crm", value: "crm-1", verified: true },
      { type: "email", value: "ann@example.org", verified: true },
      { type: "api:shop", value: "shop-1", verified: true },
    ]);
    expect(got).toEqual([
      { type: "email", value: "ann@example.org", verified: true },
      { type: "api:crm", value: "crm-1", verified: true },
      { type: "api:shop", value: "shop-1", verified: true },
    ]);
  });
});
