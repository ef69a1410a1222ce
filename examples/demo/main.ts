/** `pulumi up` entry (Pulumi.yaml): the demo program with the host from stack config. */
import { fromConfig } from "./program";

export = fromConfig();
