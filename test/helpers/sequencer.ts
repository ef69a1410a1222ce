import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Files in test/guard run last: they check that the whole run left this machine as it was. */
export default class GuardLastSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const isGuard = (f: TestSpecification) => f.moduleId.includes("/test/guard/");
    return [...sorted.filter((f) => !isGuard(f)), ...sorted.filter(isGuard)];
  }
}
